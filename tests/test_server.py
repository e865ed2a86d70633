"""The real server process over real sockets: replies, /fail for each bad input class, shutdown."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pythonosc.osc_message import OscMessage

from timbrespace.patch.bank import read_bank
from timbrespace.protocol.addresses import LATENCY_REPLY

from conftest import OscClient, ServerProc, osc, read_wav, start_server, write_config


def test_status_version_and_sync(server: ServerProc) -> None:
    c = server.client()
    st = c.status()
    assert st["engine"] == "patch"
    assert st["audio"] == "null"
    assert st["sample_rate"] == 48000 and st["block_size"] == 256
    assert st["device"] == "cpu"
    assert st["clients"] >= 1
    v = c.request("/version").params
    assert v[0] == "timbrespace"
    c.sync(42)
    c.close()


def test_status_latency_gives_one_latency_per_applied_command(server: ServerProc) -> None:
    c = server.client()  # over UDP: the reply must fit what one small request may cause
    count = c.request("/status/latency").params[0]
    for i, pitch in enumerate(range(60, 90)):
        c.send("/note", pitch, 100)
        c.send("/note", pitch, 0)
        if i % 8 == 7:
            c.sync(i)
    c.sync(99)
    reply = c.request("/status/latency").params
    # Sixty notes on and off, each applied by a block after it arrived: sixty more, the newest
    # LATENCY_REPLY of them in the reply, each a latency in ms (a block or a few on this server's
    # 5.3 ms blocks; a second would be a broken count).
    assert reply[0] == count + 60, reply
    assert len(reply) - 1 == LATENCY_REPLY
    assert all(0.0 < ms < 1000.0 for ms in reply[1:]), reply
    c.close()


@pytest.mark.parametrize(
    ("packet", "address", "needle"),
    [
        (osc("/nope", 1), "/nope", "unknown address"),
        (osc("/note", 60), "/note", "expected 2 argument(s)"),
        (osc("/note", "x", 100), "/note", "expected an int"),
        (osc("/latent", 0.5, 2.0), "/latent", "out of range [0, 1]"),
        (osc("/latent", float("nan"), 0.5), "/latent", "finite"),
        (osc("/latent", float("inf"), 0.5), "/latent", "finite"),
        (osc("/patch/load", "no such preset"), "/patch/load", "no such preset"),
        (osc("/param", "cutoff", 0.5), "/param", "unknown amSynth parameter"),
        (b"\x00\x01garbage", "", "malformed packet"),
        (b"/note\x00\x00\x00,ii\x00\x00\x00", "", "malformed packet"),  # truncated arguments
    ],
)
def test_each_bad_input_gets_fail_and_server_keeps_serving(
    server: ServerProc, packet: bytes, address: str, needle: str
) -> None:
    c = server.client()
    before = c.status()["rejected"]
    c.send_raw(packet)
    fail = c.expect("/fail")
    assert fail.params[0] == address
    assert needle in fail.params[1]
    assert c.status()["rejected"] == before + 1
    c.close()


def test_alpha_before_source_and_target_gets_fail(tmp_path: Path) -> None:
    # A server of its own: on the shared one another test may have set /source and /target.
    s = start_server(tmp_path)
    try:
        c = s.client()
        c.send("/alpha", 0.5)
        fail = c.expect("/fail")
        assert fail.params[0] == "/alpha" and "/alpha needs /source and /target first" in fail.params[1]
        c.close()
    finally:
        assert s.stop() == 0


def test_patch_load_list_save_and_param(server: ServerProc) -> None:
    c = server.client()
    r = c.request("/patch/load", 0).params
    assert r[0] == 0 and "/" in r[1] and 0.0 <= r[2] <= 1.0 and 0.0 <= r[3] <= 1.0
    by_name = c.request("/patch/load", r[1]).params
    assert by_name[:2] == r[:2]
    first = c.request("/patch/list", 0, 64).params
    total = first[0]
    assert total > 2000 and first[1] == 0 and first[2] == r[1]
    names = first[2:]
    while len(names) < total:  # one page per request, from where the last one ended
        page = c.request("/patch/list", len(names), 64).params
        assert page[0] == total and page[1] == len(names) and len(page) > 2
        names += page[2:]
    assert len(names) == total
    assert c.request("/patch/list", total, 64).params == [total, total]
    c.send("/param", "filter_cutoff", 0.25)
    saved = c.request("/patch/save", "my sound").params
    assert saved[1].endswith("/my sound")
    assert saved[2] == "user.amSynth.bank"  # the bank's name: a reply never reveals where files live
    bank = read_bank(server.tmp / saved[2])
    assert bank[-1].name == "my sound"
    from timbrespace.patch.params import INDEX

    assert bank[-1].values[INDEX["filter_cutoff"]] == pytest.approx(0.25)
    assert c.request("/patch/load", saved[1]).params[1] == saved[1]
    fail = c.request("/patch/save", "../etc/passwd", reply="/fail").params
    assert "/patch/save" in fail[0]
    c.close()


def test_source_target_alpha_and_notes(server: ServerProc) -> None:
    c = server.client()
    c.send("/source", 0)
    c.send("/target", 1)
    c.send("/alpha", 0.5)
    c.send("/note", 60, 100)
    c.send("/note", 64, 100)
    c.send("/pitch", 61.5)
    c.sync(3)
    c.status_until(lambda st: st["voices"] >= 2)
    c.send("/panic")
    c.sync(4)
    c.close()


def test_liblo_oscsend_is_understood(server: ServerProc) -> None:
    c = server.client()
    before = c.status()
    out = subprocess.run(
        ["oscsend", server.host, str(server.port), "/note", "ii", "69", "100"],
        capture_output=True, text=True, timeout=10,
    )
    assert out.returncode == 0, out.stderr
    bad = subprocess.run(
        ["oscsend", server.host, str(server.port), "/note", "ff", "69.5", "100"],
        capture_output=True, text=True, timeout=10,
    )
    assert bad.returncode == 0
    c.sync(9)
    after = c.status_until(lambda st: st["voices"] >= 1)  # the good /note sounds
    assert after["received"] >= before["received"] + 3
    assert after["rejected"] == before["rejected"] + 1  # 69.5 is not a MIDI note number
    c.send("/note", 69, 0)
    c.sync(10)
    c.close()


def test_oscdump_decodes_what_timbrespace_send_sends(tmp_path: Path) -> None:
    """liblo's oscdump is the outside judge of our encoder (timbrespace send)."""
    import sys

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dump = subprocess.Popen(["oscdump", "-L", str(port)], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.3)
        for args in (["/note", "69", "100"], ["/latent", "0.25", "1"], ["/patch/load", "BriansBank01/basic11"]):
            subprocess.run(
                [sys.executable, "-m", "timbrespace", "send", "--host", "127.0.0.1", "--port", str(port),
                 "--wait", "0", *args],
                check=True, timeout=30,
            )
        time.sleep(0.3)
    finally:
        dump.terminate()
        out = dump.communicate(timeout=5)[0]
    assert "/note ii 69 100" in out
    assert "/latent ff 0.250000 1.000000" in out
    assert '/patch/load s "BriansBank01/basic11"' in out


def test_tcp_slip_round_trip(server: ServerProc) -> None:
    from pythonosc.slip import END, decode, encode

    with socket.create_connection((server.host, server.port), timeout=5) as s:
        s.sendall(encode(osc("/status")) + encode(osc("/nope")))
        buf = b""
        while buf.count(END) < 4:
            buf += s.recv(65536)
        frames = [OscMessage(decode(f + END)) for f in buf.split(END) if f]
    assert [f.address for f in frames] == ["/status.reply", "/fail"]


def test_big_datagram_is_accepted(server: ServerProc) -> None:
    c = server.client()
    name = "x" * 60000
    c.send("/patch/load", name)
    fail = c.expect("/fail")
    assert fail.params[0] == "/patch/load"
    c.close()


def test_sigterm_persists_state_and_exits_zero(tmp_path: Path) -> None:
    s = start_server(tmp_path)
    c = s.client()
    c.send("/latent", 0.25, 0.75)
    c.sync(1)
    c.close()
    assert s.stop(signal.SIGTERM) == 0
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["layers"][0]["engines"]["patch"]["xy"] == [0.25, 0.75]
    # Restart: the state comes back.
    s2 = start_server(tmp_path)
    try:
        assert s2.client().status()["engine"] == "patch"
    finally:
        assert s2.stop(signal.SIGINT) == 0
    assert json.loads((tmp_path / "state.json").read_text())["layers"][0]["engines"]["patch"]["xy"] == [0.25, 0.75]


def test_kill_9_loses_nothing_that_was_saved(tmp_path: Path) -> None:
    # The state is kept on disk while the server runs (state.save_interval), not only at exit.
    path = tmp_path / "state.json"
    s = start_server(tmp_path, state={"save_interval": 0.1})
    try:
        with s.client() as c:
            c.send("/latent", 0.25, 0.75)
            c.send("/param", "filter_cutoff", 0.75)
            c.sync(1)  # the map move is decoded: the save below takes its sound
            index, name = c.request("/patch/save", "kept").params[:2]

        def saved() -> dict[str, Any] | None:
            try:
                patch = json.loads(path.read_text())["layers"][0]["engines"]["patch"]
            except (OSError, ValueError, KeyError):
                return None
            return patch if patch["values"]["filter_cutoff"] == 0.75 else None

        deadline = time.monotonic() + 20.0
        while (patch := saved()) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert patch is not None, "the state was not saved while the server ran"
    finally:
        os.killpg(s.proc.pid, signal.SIGKILL)  # the server and its audio process, without warning
        s.proc.wait(10)
    assert not list(tmp_path.glob(".state.json.*")), "a half-written state file was left behind"
    s2 = start_server(tmp_path)
    try:
        with s2.client() as c:
            c.request("/hello", "after")
            c.send("/notify", 1)
            state: dict[str, list[Any]] = {}
            while True:
                m = c.recv(2.0)
                if m.address == "/param":
                    state[m.params[0]] = m.params[1:]
                elif m.address == "/latent":
                    state["/latent"] = m.params
                if "/latent" in state and "filter_cutoff" in state:
                    break
            assert state["/latent"] == pytest.approx([0.25, 0.75])
            assert state["filter_cutoff"] == pytest.approx([0.75])
            assert c.request("/patch/list", index, 1).params[2:] == [name]  # the user bank too
    finally:
        assert s2.stop(signal.SIGTERM) == 0


def test_record_on_null_backend_writes_real_audio(tmp_path: Path) -> None:
    out = tmp_path / "take.wav"
    s = start_server(tmp_path, "--record", str(out))
    c = s.client()
    c.send("/note", 57, 110)
    c.sync(1)
    time.sleep(1.0)
    c.send("/note", 57, 0)
    c.sync(2)
    time.sleep(0.2)
    c.close()
    assert s.stop() == 0
    audio = read_wav(out)
    assert audio.shape[1] == 2
    assert audio.size > 48000  # more than a second of frames
    assert np.isfinite(audio).all()
    assert np.sqrt(np.mean(audio**2)) > 1e-3  # the note is in the file


def test_status_level_meters_the_output_and_falls_to_silence(tmp_path: Path) -> None:
    """/status level_db is the output's held peak: it reads what the recording holds while a note
    sounds, and falls to silence after it."""
    out = tmp_path / "take.wav"
    s = start_server(tmp_path, "--record", str(out))
    try:
        with s.client() as c:
            assert c.status()["level_db"] == -120.0  # nothing played yet
            c.send("/note", 57, 110)
            c.sync(1)
            seen = -120.0
            for _ in range(60):  # 0.6 s of the held note
                seen = max(seen, c.status()["level_db"])
                time.sleep(0.01)
            c.send("/note", 57, 0)
            c.sync(2)
            c.status_until(lambda st: st["level_db"] < -60.0, timeout=10.0)
    finally:
        assert s.stop() == 0
    peak_db = 20 * np.log10(np.abs(read_wav(out)).max())
    # A peak meter, polled every 10 ms while it falls 40 dB a second: within a few dB of the file's
    # peak (6 dB allows a busy machine's late polls), never above it by more than rounding.
    assert peak_db - 6.0 < seen < peak_db + 0.5, (seen, peak_db)


def test_bad_config_exits_nonzero_with_message(tmp_path: Path) -> None:
    import sys

    cfg = tmp_path / "bad.yaml"
    cfg.write_text("audio:\n  block_size: 300\n")
    out = subprocess.run(
        [sys.executable, "-m", "timbrespace", "serve", "--config", str(cfg)],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode != 0
    assert "audio.block_size = 300" in out.stderr


@pytest.mark.xdist_group("jack")  # never beside test_jack, which starts a JACK server
def test_jack_without_a_jack_server_is_one_clear_line(tmp_path: Path) -> None:
    """Asking for JACK where none runs: what failed and what to do, nothing that looks like a crash."""
    import sys

    from timbrespace.audio.host import jack_running

    if jack_running():
        pytest.skip("a JACK server is running here")
    cfg = write_config(tmp_path, audio={"backend": "jack"})
    out = subprocess.run([sys.executable, "-m", "timbrespace", "serve", "--config", str(cfg)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    said = (out.stdout + out.stderr).strip().splitlines()
    assert said[-1].startswith("timbrespace serve: audio backend 'jack': no JACK server is running")
    assert "--audio null" in said[-1]
    assert not any(w in line for line in said for w in ("Traceback", "Error:", "Cannot connect", "Pyo error")), said


def test_flood_of_bad_packets_does_not_stop_service(server: ServerProc) -> None:
    c = OscClient(server.host, server.port)
    before = c.status()["rejected"]
    for i in range(500):
        c.send_raw(bytes([i % 256]) * (i % 40 + 1))
    # Each bad packet is answered with /fail. Read them before asking for /status: 500 replies
    # overflow the client's receive buffer, and the kernel would drop the /status reply behind them.
    fails = 0
    try:
        while True:
            fails += c.recv(0.5).address == "/fail"
    except TimeoutError:
        pass
    st = c.status()
    assert fails >= 1 and st["rejected"] - before >= fails
    c.close()


def test_bundles_immediate_and_future(server: ServerProc) -> None:
    """Built with python-osc: an immediate bundle is applied in order; a future one at its time."""
    from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
    from pythonosc.osc_message_builder import OscMessageBuilder

    def bundle(timetag: float, *msgs: tuple[str, tuple[object, ...]]) -> bytes:
        b = OscBundleBuilder(timetag)
        for address, args in msgs:
            m = OscMessageBuilder(address)
            for a in args:
                m.add_arg(a)
            b.add_content(m.build())
        return b.build().dgram

    c = server.client()
    c.send_raw(bundle(IMMEDIATELY, ("/note", (62, 100)), ("/note", (62, 0)), ("/sync", (11,))))
    assert c.expect("/synced").params == [11]
    sent = time.time()
    c.send_raw(bundle(sent + 0.4, ("/sync", (12,))))
    c.sync(13)  # sent after the future bundle, answered first: the server did not sleep on it
    assert c.expect("/synced").params == [12]
    assert time.time() - sent >= 0.38
    c.close()


def test_reply_port_redirects_replies(server: ServerProc) -> None:
    """/reply/port: what Max's udpsend/udpreceive pair needs."""
    listener = OscClient(server.host, server.port)
    port = listener.sock.getsockname()[1]
    sender = server.client()
    sender.send("/reply/port", port)
    assert listener.expect("/reply/port.reply").params == [port]
    sender.send("/version")
    sender.send("/note", 300, 1)
    sender.send("/sync", 21)
    assert listener.expect("/version.reply").params[0] == "timbrespace"
    assert listener.expect("/fail").params[0] == "/note"
    assert listener.expect("/synced").params == [21]
    with pytest.raises(TimeoutError):
        sender.recv(0.3)  # nothing came back to the sending port
    sender.send("/reply/port", 0)  # and back again
    assert sender.expect("/reply/port.reply").params == [sender.sock.getsockname()[1]]
    sender.close()
    listener.close()


def test_restored_state_is_logged_and_fresh_ignores_it(tmp_path: Path) -> None:
    """Issue 19: after a run, patch.initial_preset seemed to do nothing (the saved state won, unsaid)."""
    state = tmp_path / "state.json"
    section = {"initial_preset": "BriansBank02/WowPad", "user_bank": str(tmp_path / "user.amSynth.bank")}
    s = start_server(tmp_path, patch=section)
    s.client().request("/patch/load", "BriansBank01/Pianola")
    assert s.stop() == 0
    assert f"state: nothing saved in {state}; starting from the config" in "\n".join(s.lines)
    s = start_server(tmp_path, patch=section)
    try:
        (line,) = [ln for ln in s.lines if "state: restored" in ln]
        assert f"from {state}; it overrides the config's engine, patch.initial_preset, patch.initial_latent" in line
        assert "serve --fresh" in line
    finally:
        assert s.stop() == 0
    assert json.loads(state.read_text())["layers"][0]["engines"]["patch"]["preset"] == "BriansBank01/Pianola"
    s = start_server(tmp_path, "--fresh", patch=section)
    try:
        assert any(f"state: --fresh: {state} not restored" in ln for ln in s.lines), s.lines
    finally:
        assert s.stop() == 0
    # The config's initial preset was what played, and is what was saved at exit.
    assert json.loads(state.read_text())["layers"][0]["engines"]["patch"]["preset"] == "BriansBank02/WowPad"
