"""The SuperCollider client (clients/supercollider) run for real: headless sclang against a real server.

sclang compiles its class library with the Timbrespace class folder added through a ``-l`` config,
runs a harness that calls every method of the class and then the two examples, and exits. The
test reads what sclang printed (replies reached the callbacks, no sclang errors) and what the
server counted.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import OscClient, ServerProc, osc, read_wav, start_server

ROOT = Path(__file__).resolve().parents[1]
SC = ROOT / "clients/supercollider"
QUARK = SC / "Timbrespace"  # the quark's folder: SuperCollider names a local quark after it

pytestmark = pytest.mark.skipif(shutil.which("sclang") is None, reason="sclang (SuperCollider) is not installed")

# Every method once, one deliberate /fail, then the examples as a user would evaluate them.
HARNESS = r"""
(
var port = "TIMBRESPACE_PORT".getenv.asInteger;
var dir = "TIMBRESPACE_EXAMPLES".getenv;
SystemClock.sched(50, { "HARNESS TIMEOUT".postln; 1.exit; nil });
~ts = Timbrespace("127.0.0.1", port);
"QUARK %".format((dir +/+ "../Timbrespace/Timbrespace.quark").load[\name]).postln;
"QUARK FOLDER %".format(Quark.fromLocalPath(dir +/+ "../Timbrespace").name).postln;
fork {
	~ts.version { |v| "VERSION %".format(v).postln };
	~ts.note(60, 100);
	~ts.sync(7, { |id| "SYNCED %".format(id).postln });
	0.4.wait;
	~ts.status { |s| "HELD voices=%".format(s.voices).postln };
	0.3.wait;
	// Two fingers on the map, each a voice (the second at the default velocity), moved and
	// lifted (on the patch engine each moves the layer's point: points with a sustained patch).
	~ts.touch(0, 0.25, 0.75, 64, 90);
	~ts.touch(1, 0.5, 0.5, 67);
	~touched = 0;
	50.do { if(~touched < 3) { ~ts.status { |s| ~touched = s.voices }; 0.1.wait } };
	"TOUCHED voices=%".format(~touched).postln;
	~ts.touch(1, 0.5, 0.625);
	~ts.touchOff(0);
	~ts.touchOff(1);
	~ts.release(60);
	~ts.latent(0.25, 0.75);
	~ts.load("BriansBank01/basic11", { |r| "LOADED %".format(r[1]).postln });
	~ts.param("filter_cutoff", 0.5);
	~ts.source(0);
	~ts.target("BriansBank02/WowPad");
	~ts.alpha(0.5);
	~ts.pitch(61.5);
	~ts.param("no_such_param", 1);
	~ts.panic;
	0.5.wait;
	"FAILS %".format(~ts.failures.size).postln;
	~ts.failures.clear;
	(dir +/+ "pbind_latent.scd").load;
	0.2.wait;
	while { ~player.isPlaying } { 0.1.wait };
	"PBIND DONE".postln;
	(dir +/+ "alpha_morph.scd").load;
	0.2.wait;
	while { ~morph.isPlaying } { 0.1.wait };
	"MORPH DONE".postln;
	(dir +/+ "timbre_transfer.scd").load;
	0.2.wait;
	while { ~transfer.isPlaying } { 0.1.wait };
	"TRANSFER DONE".postln;
	~ts.engine(\timbre);
	~ts.corners(0, "French horn", \english_horn, 11);
	~ts.z(2, -1.5);
	~ts.z(99, 0);
	~ts.sync(8, { "SYNCED 8".postln });
	0.5.wait;
	"FAILS %".format(~ts.failures.size).postln;
	~ts.free;
	0.exit;
};
)
"""


def test_supercollider_class_and_examples_play_the_server(tmp_path: Path) -> None:
    take = tmp_path / "take.wav"
    (tmp_path / "srv").mkdir()
    server = start_server(tmp_path / "srv", "--record", str(take))
    try:
        _play(server, tmp_path)
    finally:
        assert server.stop() == 0
    # What the server rendered while sclang played it: sound, finite, not clipped.
    audio = read_wav(take)
    assert audio.shape[0] > 48000 * 5
    assert np.isfinite(audio).all() and np.abs(audio).max() < 1.0
    assert np.sqrt(np.mean(audio**2)) > 1e-3


def _play(server: ServerProc, tmp_path: Path) -> None:
    conf = tmp_path / "sclang_conf.yaml"
    conf.write_text(f"includePaths:\n  - {QUARK}\nexcludePaths: []\npostInlineWarnings: false\n")
    harness = tmp_path / "harness.scd"
    harness.write_text(HARNESS)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", QTWEBENGINE_DISABLE_SANDBOX="1",
               TIMBRESPACE_PORT=str(server.port), TIMBRESPACE_EXAMPLES=str(SC / "examples"))
    c = server.client()
    before = c.status()
    out = subprocess.run(["sclang", "-i", "none", "-l", str(conf), str(harness)],
                         capture_output=True, text=True, env=env, timeout=90, cwd=tmp_path)
    log = out.stdout + out.stderr
    after = c.status()
    c.close()
    assert out.returncode == 0, log[-4000:]
    assert not re.search(r"^\s*(ERROR|FAILURE IN SERVER|HARNESS TIMEOUT)", log, re.M), log[-4000:]
    assert "Compiling directory '" + str(QUARK) + "'" in log  # the class came from the repo, not elsewhere
    assert "QUARK Timbrespace" in log  # the Quark file is a valid SuperCollider literal
    # Quarks.install names a local quark after its folder (issue 19: it installed as "supercollider").
    assert "QUARK FOLDER Timbrespace" in log
    # Replies reached the class's OSCdef callbacks.
    assert "VERSION [ timbrespace," in log
    assert "SYNCED 7" in log and "SYNCED 8" in log
    held = re.search(r"HELD voices=(\d+)", log)
    assert held and int(held[1]) >= 1, log[-4000:]
    touched = re.search(r"TOUCHED voices=(\d+)", log)  # the held note and a voice per finger
    assert touched and int(touched[1]) >= 3, log[-4000:]
    assert "LOADED BriansBank01/basic11" in log
    # The deliberate unknown parameter came back as /fail and was printed; nothing else failed.
    assert "Timbrespace /fail: /param" in log
    # The examples ran to their end; the morph example printed its own /status line.
    assert "PBIND DONE" in log and "MORPH DONE" in log and "TRANSFER DONE" in log
    assert re.search(r"voices \d+, received \d+, rejected \d+", log)
    # The timbre example's note sounded on the timbre engine while alpha moved.
    held = re.search(r"timbre engine (\w+), voices (\d+)", log)
    assert held and held[1] == "timbre" and int(held[2]) >= 1, log[-4000:]
    # Its out-of-range /z (index 99) came back as /fail; the corners by index, name and symbol did not.
    assert re.findall(r"^FAILS (\d+)", log, re.M) == ["1", "1"], log[-4000:]
    assert "Timbrespace /fail: /z" in log
    # The server got it all: 32 notes with their /latent and releases, 204 alpha steps, the timbre
    # example's 41 alpha steps, 42 /z, 48 map moves and 10 notes, ...
    assert after["received"] - before["received"] >= 15 + 3 * 32 + 204 + 41 + 42 + 48 + 10
    assert after["rejected"] - before["rejected"] == 2


# -- the session: hello, notify, the mirror kept by feedback, bye -----------------------------------

#: sclang joins, subscribes (renewing every 0.5 s), sets a point and alpha of its own, and then
#: answers the test: /harness/dump sends its mirror back as the messages that set it.
MIRROR_HARNESS = r"""
(
var port = "TIMBRESPACE_PORT".getenv.asInteger;
SystemClock.sched(60, { "HARNESS TIMEOUT".postln; 1.exit; nil });
~ts = Timbrespace("127.0.0.1", port);
~ts.renewPeriod = 0.5;
OSCdef(\dump, { |msg, time, from|
	var n = 0;
	~ts.mirrors.messages(~ts.layer).do { |m| from.sendMsg('/mirror', *m); n = n + 1 };
	~ts.mirror[\cursors].keysValuesDo { |id, c| from.sendMsg('/mirror', '/cursor', id, c.name, c.x, c.y); n = n + 1 };
	~ts.clients.keysValuesDo { |id, c| from.sendMsg('/mirror', '/clients', 'joined', id, c.name, c.layer); n = n + 1 };
	~ts.mirror[\touches].keysValuesDo { |id, fingers|
		fingers.keysValuesDo { |f, t| from.sendMsg('/mirror', '/cursor/touch', id, t.name, f, t.x, t.y, 1); n = n + 1 };
	};
	from.sendMsg('/mirror.end', n, ~ts.renewals, ~ts.subscribed.binaryValue);
}, '/harness/dump').permanent_(true);
OSCdef(\touch, { |msg, time, from|
	if(msg[1] == 'off') { ~ts.touchOff(msg[2]) } { ~ts.touch(msg[1], msg[2], msg[3], 62, 80) };
	from.sendMsg('/touched');
}, '/harness/touch').permanent_(true);
OSCdef(\layer, { |msg, time, from|
	~ts.layer_(msg[1], { |i| from.sendMsg('/layered', i) });
}, '/harness/layer').permanent_(true);
OSCdef(\quit, { |msg, time, from|
	~ts.bye { |id| "BYE %".format(id).postln; ~ts.free; 0.exit };
}, '/harness/quit');
~ts.latent(0.125, 0.875);
~ts.alpha(0.25);
~ts.hello("sclang", { |r| "HELLO % %".format(*r).postln });
~ts.notify(true, { |id| "READY % %".format(id, NetAddr.langPort).postln });
)
"""


def _feedback_key(address: str, args: list[Any]) -> tuple[Any, ...]:
    """A message's key in a layer's state: its address and the arguments naming what it sets."""
    if address == "/cursor/touch":  # id name finger x y down
        return (address, args[0], args[2])
    n = {"/param": 1, "/z": 1, "/cursor": 1, "/clients": 2}.get(address, 0)
    return (address, *args[:n])


def _as_state(messages: list[tuple[str, list[Any]]]) -> dict[tuple[Any, ...], list[Any]]:
    return {_feedback_key(a, p): p for a, p in messages}


def _snapshot(c: OscClient) -> dict[tuple[Any, ...], list[Any]]:
    """What a new subscriber receives: the layer's whole state, cursors and members."""
    c.send("/notify", 1)
    assert c.expect("/done").params[0] == "/notify"
    got = []
    with contextlib.suppress(TimeoutError, socket.timeout):
        while True:  # the snapshot is one flush; a quiet half second ends it
            m = c.recv(0.5)
            got.append((m.address, m.params))
    c.send("/notify", 0)
    return _as_state(got)


def _dump(c: OscClient, to: tuple[str, int]) -> tuple[dict[tuple[Any, ...], list[Any]], int, int]:
    """sclang's mirror, its renewals count and whether it is subscribed."""
    c.sock.sendto(osc("/harness/dump"), to)
    got = []
    while True:
        m = c.recv()
        if m.address == "/mirror.end":
            assert len(got) == m.params[0]
            return _as_state(got), m.params[1], m.params[2]
        if m.address == "/mirror":
            got.append((m.params[0], m.params[1:]))


def _differences(a: dict[tuple[Any, ...], list[Any]], b: dict[tuple[Any, ...], list[Any]]) -> list[str]:
    """Where two states differ; floats travel as OSC float32 both ways, so equal within 1e-6."""
    out = [f"{k}: {a.get(k)} != {b.get(k)}" for k in a.keys() ^ b.keys()]
    return out + [f"{k}: {a[k]} != {b[k]}" for k in a.keys() & b.keys() if a[k] != pytest.approx(b[k], abs=1e-6)]


def _until(differences: Any, what: str, timeout: float = 10.0) -> None:
    """Poll until ``differences()`` is empty (feedback is sent at the feedback rate, not at once)."""
    deadline = time.monotonic() + timeout
    while left := differences():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: {sorted(left)[:20]}")
        time.sleep(0.1)


def test_supercollider_mirror_follows_the_server(server: ServerProc, tmp_path: Path) -> None:
    conf = tmp_path / "sclang_conf.yaml"
    conf.write_text(f"includePaths:\n  - {QUARK}\nexcludePaths: []\npostInlineWarnings: false\n")
    harness = tmp_path / "mirror.scd"
    harness.write_text(MIRROR_HARNESS)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", QTWEBENGINE_DISABLE_SANDBOX="1",
               TIMBRESPACE_PORT=str(server.port))
    proc = subprocess.Popen(["sclang", "-i", "none", "-l", str(conf), str(harness)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path)
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if ready := re.match(r"READY (\d+) (\d+)", line):
                break
        else:
            raise AssertionError("".join(lines[-60:]))
        sc_id, sc_at = int(ready[1]), ("127.0.0.1", int(ready[2]))
        assert f"HELLO {sc_id} sclang" in "".join(lines)
        py, judge, probe = server.client(), server.client(), server.client()
        py_id = py.request("/hello", "py").params[0]
        # Another player moves the map point and a parameter (a point re-decodes the whole patch), on
        # the patch engine (where a finger moves the layer's point too, below).
        py.send("/engine", "patch")
        for x, y in ((0.2, 0.3), (0.5, 0.5), (0.75, 0.25)):
            py.send("/latent", x, y)
        py.send("/param", "filter_cutoff", 0.25)
        py.send("/param", "osc_mix", -0.5)
        py.sync(1)
        judge_id = judge.request("/hello", "judge").params[0]
        state = _snapshot(judge)
        members = judge.request("/clients").params
        others = ("/cursor", "/cursor/touch", "/clients")  # not the layer's own state
        layer = {k: v for k, v in state.items() if k[0] not in others}
        assert layer[("/latent",)] == pytest.approx([0.75, 0.25]) and layer[("/alpha",)] == [0.25]
        assert layer[("/param", "filter_cutoff")] == ["filter_cutoff", 0.25]
        # The others saw sclang's own point as its cursor.
        assert state[("/cursor", sc_id)] == pytest.approx([sc_id, "sclang", 0.125, 0.875])

        def mirror() -> dict[tuple[Any, ...], list[Any]]:
            return _dump(probe, sc_at)[0]

        # sclang's mirror ends equal to the server's state (its own alpha included), with the other
        # player's cursor and the member list.
        _until(lambda: _differences({k: v for k, v in mirror().items() if k[0] not in others},
                                    layer), "the mirror never matched the server")
        got, renewals, subscribed = _dump(probe, sc_at)
        assert got[("/cursor", py_id)] == pytest.approx([py_id, "py", 0.75, 0.25])
        assert ("/cursor", sc_id) not in got  # a client is not its own cursor
        rows = [members[i:i + 3] for i in range(2, len(members), 3)]
        assert {k: v for k, v in got.items() if k[0] == "/clients"} == {
            ("/clients", "joined", i): ["joined", i, n, layer_] for i, n, layer_ in rows}
        assert {i for i, _, _ in rows} == {sc_id, py_id, judge_id}
        # The subscription was renewed on its own (every 0.5 s here, 25 s by default).
        assert subscribed == 1 and renewals >= 2, renewals
        # The other player's finger: in the mirror while down, where it moves, gone once lifted.
        def fingers() -> dict[tuple[Any, ...], list[Any]]:
            return {k: v for k, v in mirror().items() if k[0] == "/cursor/touch"}

        py.send("/touch", 3, 0.5, 0.5, 64, 100)
        py.send("/touch", 3, 0.625, 0.375)
        py.sync()
        _until(lambda: _differences(fingers(), {("/cursor/touch", py_id, 3): [py_id, "py", 3, 0.625, 0.375, 1]}),
               "the mirror did not show the other player's finger")
        py.send("/touch/off", 3)
        py.sync()
        _until(fingers, "the mirror kept a finger lifted")
        # sclang's own finger: the others see it; on the patch engine it moves the layer's point,
        # which sclang's mirror follows although the server does not echo it.
        probe.sock.sendto(osc("/harness/touch", 2, 0.25, 0.75), sc_at)
        probe.expect("/touched")
        _until(lambda: _differences({k: v for k, v in _snapshot(judge).items() if k[0] in ("/cursor/touch", "/latent")},
                                    {("/cursor/touch", sc_id, 2): [sc_id, "sclang", 2, 0.25, 0.75, 1],
                                     ("/latent",): [0.25, 0.75]}), "the server did not take sclang's finger")
        assert mirror()[("/latent",)] == pytest.approx([0.25, 0.75])
        probe.sock.sendto(osc("/harness/touch", "off", 2), sc_at)
        probe.expect("/touched")
        _until(lambda: [k for k in _snapshot(judge) if k[0] == "/cursor/touch"], "sclang's finger was not lifted")
        # The other player leaves: gone from the members and the cursors.
        py.send("/bye")
        assert py.expect("/done").params == ["/bye", py_id]
        _until(lambda: {("/cursor", py_id), ("/clients", "joined", py_id)} & mirror().keys(),
               "the mirror kept a client that left")
        # sclang moves to layer 1: the server lists it there, and its mirror follows layer 1.
        probe.sock.sendto(osc("/harness/layer", 1), sc_at)
        assert probe.expect("/layered").params == [1]
        rest = judge.request("/clients").params[2:]
        assert dict(zip(rest[::3], rest[2::3]))[sc_id] == 1
        judge.send("/layer/1/latent", 0.375, 0.625)
        judge.sync()
        _until(lambda: _differences({("/latent",): mirror().get(("/latent",))}, {("/latent",): [0.375, 0.625]}),
               "the mirror did not follow layer 1")
        probe.sock.sendto(osc("/harness/quit"), sc_at)
        assert proc.wait(30) == 0
        judge.send("/bye")
        for c in (py, judge, probe):
            c.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log = "".join(lines) + (proc.stdout.read() if proc.stdout else "")
    assert f"BYE {sc_id}" in log, log[-4000:]
    assert not re.search(r"^\s*(ERROR|HARNESS TIMEOUT)", log, re.M), log[-4000:]
