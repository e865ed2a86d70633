"""The SuperCollider client (clients/supercollider) run for real: headless sclang against a real server.

sclang compiles its class library with the Timbrespace class folder added through a ``-l`` config,
runs a harness that calls every method of the class and then the two examples, and exits. The
test reads what sclang printed (replies reached the callbacks, no sclang errors) and what the
server counted.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import ServerProc, read_wav, start_server

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
