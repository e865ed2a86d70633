"""/input/status (issue 16): the live input's settings, tracking and the latency the audio process measures.

The latency is counted by the audio process as it plays (``audio/input_latency.py``): from a
note's onset to the block from which the voice stays within 25 cents of the note's pitch. The
claims and their tolerances:

* the count, on a made-up sequence of blocks, is exactly what the definition says (whole blocks,
  the onset's sample in the block before, the sample an armed estimate at the note's pitch landed
  at) and notes without one pitch are not counted;
* on a live server (null backend) playing a WAV of sine notes with gaps, the reply carries what
  was set, the tracked f0 within 25 cents of the note sounding, and latencies counted for the
  notes, each within what the design claims: the voice at the note's pitch within two long
  tracker windows of the onset (tests/test_live_input.py holds the oscillator to that), plus
  the one block the count rounds up to (it ends at a block's start);
* the reply fits the UDP reply budget of the smallest request (it is 20 bytes), whatever the
  target's name; bad arguments get ``/fail``.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile

from timbrespace.audio.input_latency import OnsetLatency
from timbrespace.input_follow import MAX_TARGET_BYTES, status_reply
from timbrespace.link.input import LAT_RING, InputSettings, InputShared
from timbrespace.protocol.encode import encode_message
from timbrespace.protocol.replies import UDP_REPLY_FLOOR

from conftest import OscClient, shipped_timbre_config, start_server

SR, BS, WINDOW = 48000, 256, 1024
CENTS = 25.0


def _run(blocks: list[tuple[Any, ...]], offset: int = 0) -> list[float]:
    """Each block: (loud, f0, open) or (loud, f0, open, early, since)."""
    got: list[float] = []
    lat = OnsetLatency(BS, WINDOW, got.append)
    for loud, f0, open_, *early in blocks:
        if lat.block(loud, f0, open_, *early):
            lat.onset_at(offset)
    return got


def test_the_latency_is_counted_from_the_onsets_sample_to_the_block_that_reaches_the_pitch() -> None:
    horizon = OnsetLatency(BS, WINDOW, print).horizon
    assert horizon == 16  # four 1024-sample windows of 256-sample blocks
    quiet = [(False, 0.0, False)] * 3
    # The onset's block and two more at the last note's pitch, then 220 Hz (10 cents of wobble).
    note = [(True, 330.0, True)] * 3 + [(True, 220.0 * 2 ** (10 / 1200 * (-1) ** k), True) for k in range(13)]
    assert _run(quiet + note, offset=100) == [(3 + 1) * BS - 100.0]
    # At its pitch from the onset's block: one block after the onset's, less its offset.
    assert _run(quiet + [(True, 220.0, True)] * horizon, offset=0) == [float(BS)]
    # A closed voice (input.onset pitch, before the pitch is known) is not at any pitch.
    held = [(True, 220.0, False)] * 5 + [(True, 220.0, True)] * (horizon - 5)
    assert _run(quiet + held) == [6.0 * BS]
    # Not counted: a note that ends before the horizon, one that glides, one the voice never sounds.
    assert _run(quiet + [(True, 220.0, True)] * (horizon - 1) + quiet) == []
    glide = [(True, 220.0 * 2 ** (k / 24), True) for k in range(horizon)]
    assert _run(quiet + glide) == []
    assert _run(quiet + [(True, 220.0, False)] * horizon) == []
    # An armed estimate at the note's pitch landed 100 samples before the block that chose it: the
    # voice was there from that sample; one that is not at the note's pitch changes nothing.
    switched = [(True, 330.0, True)] * 2 + [(True, 220.0, True, 220.0, 100)] + [(True, 220.0, True)] * 13
    assert _run(quiet + switched, offset=50) == [(2 + 1) * BS - 50.0 - 100.0]
    missed = [(True, 330.0, True)] * 2 + [(True, 220.0, True, 300.0, 100)] + [(True, 220.0, True)] * 13
    assert _run(quiet + missed, offset=50) == [(2 + 1) * BS - 50.0]
    # Two notes, each counted once.
    assert len(_run((quiet + [(True, 220.0, True)] * (horizon + 4)) * 2)) == 2


def test_the_ring_keeps_the_newest_latencies_and_counts_them_all() -> None:
    shared = InputShared()
    assert shared.latencies()[0] == 0 and shared.latencies()[1].size == 0
    for k in range(LAT_RING + 10):
        shared.record_latency(float(k))
    count, values = shared.latencies()
    assert count == LAT_RING + 10
    assert sorted(values.tolist()) == [float(k) for k in range(10, LAT_RING + 10)]
    shared.close()


def test_the_reply_fits_the_smallest_udp_budget_whatever_the_targets_name() -> None:
    request = encode_message("/input/status", ())
    assert 4 * len(request) < UDP_REPLY_FLOOR  # the floor is what bounds the reply
    worst = InputSettings(True, -60.123, -24.5, 0.75, -120.0)
    for name in ("trumpet", "x" * MAX_TARGET_BYTES, "é" * 100, "acoustic grand piano, bright, long release"):
        args = status_reply(worst, name, 0.5, -119.9, 1999.9, 123.4, 567.8, 2**31 - 1)
        assert len(encode_message("/input/status.reply", args)) <= UDP_REPLY_FLOOR, name


def _input_status(c: OscClient) -> dict[str, Any]:
    p = c.request("/input/status").params
    return dict(zip(p[::2], p[1::2]))


def _until(c: OscClient, cond: Any, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while not cond(st := _input_status(c)):
        if time.monotonic() > deadline:
            raise AssertionError(f"/input/status never met the condition: {st}")
        time.sleep(0.01)
    return st


#: Hz: above and below the short window's 213 Hz, all within the long window's (two periods in 1024 samples).
NOTES = (262.0, 330.0, 196.0, 392.0, 294.0)


def _sine_notes(path: Path) -> None:
    """Each note 300 ms (fades of 2 ms), 150 ms of silence before it."""
    parts = []
    for f in NOTES:
        t = np.arange(int(0.3 * SR)) / SR
        ramp = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.002)
        parts += [np.zeros(int(0.15 * SR)), 0.3 * np.sin(2 * np.pi * f * t) * ramp]
    soundfile.write(str(path), np.concatenate(parts), SR, subtype="PCM_16")


def test_live_server_reports_the_inputs_pitch_and_the_latency_it_measures(tmp_path: Path) -> None:
    wav = tmp_path / "notes.wav"
    _sine_notes(wav)
    s = start_server(tmp_path, "--input", str(wav), "--input-loop")
    try:
        c = s.client()
        st = _input_status(c)
        assert st["on"] == 0 and st["level_db"] == -120.0 and st["f0"] == 0.0 and st["voiced"] == 0
        assert st["latency_count"] == 0 and st["latency_p99_ms"] == 0.0
        c.send("/input/status", 1)
        fail = c.expect("/fail").params
        assert fail[0] == "/input/status" and "expected 0 argument(s)" in fail[1], fail
        c.send("/input/transpose", 30.0)
        fail = c.expect("/fail").params
        assert fail[0] == "/input/transpose" and "[-24, 24]" in fail[1], fail
        for address, value in (("/input/target", "flute"), ("/input/transpose", 7.0), ("/input/alpha", 0.75),
                               ("/input/gate", -40.0), ("/input", 1)):
            c.send(address, value)
        st = _until(c, lambda st: st["voiced"] == 1)
        assert (st["on"], st["target"], st["alpha"], st["transpose"], st["gate_db"]) == (1, "flute", 0.75, 7.0,
                                                                                         -40.0)
        # The f0 of the input (the voice is a fifth above it), within 25 cents of a note of the file.
        assert min(abs(1200 * np.log2(st["f0"] / f)) for f in NOTES) < CENTS, st
        assert -20.0 < st["level_db"] < -10.0  # a 0.3 sine: -13.5 dBFS RMS
        st = _until(c, lambda st: st["latency_count"] >= 2 * len(NOTES))  # the loop twice
        bound_ms = (2 * WINDOW + BS) / SR * 1000.0
        assert 0.0 < st["latency_p50_ms"] <= st["latency_p99_ms"] <= bound_ms, st
        c.send("/input", 0)
        st = _until(c, lambda st: st["on"] == 0)
        assert st["latency_count"] >= 2 * len(NOTES)  # kept while off
        c.close()
    finally:
        assert s.stop(signal.SIGTERM) == 0


def test_without_an_input_input_status_says_so(tmp_path: Path) -> None:
    s = start_server(tmp_path)
    try:
        c = s.client()
        c.send("/input/status")
        fail = c.expect("/fail").params
        assert fail[0] == "/input/status" and "no live input" in fail[1], fail
        c.close()
    finally:
        assert s.stop(signal.SIGTERM) == 0



def test_no_tick_is_armed_on_the_loop_while_the_input_is_off(tmp_path: Path) -> None:
    # The input path off costs nothing on the control side either: its ticks stop with it.
    import asyncio

    from timbrespace.engines.inference import InlineInference
    from timbrespace.engines.timbre_setup import PreparedTimbre, prepare
    from timbrespace.input_follow import InputFollower, InputTicks
    from timbrespace.link.frames import FrameSlots
    from timbrespace.protocol.transport import Peer
    from timbrespace.render import LocalLink
    from timbrespace.session.clients import Client
    from timbrespace.session.context import Context

    timbre = prepare(shipped_timbre_config(tmp_path), "cpu")
    assert isinstance(timbre, PreparedTimbre)
    follower = InputFollower(timbre.space, InlineInference(LocalLink()), InputShared(), FrameSlots(1, 4096, 3),
                             sample_rate=SR)
    on = follower.handlers()["/input"]
    ctx = Context(Client(1, Peer("udp", "test", 0), admin=False, last=0.0), 0.0)

    async def run() -> list[bool]:
        ticks = InputTicks(asyncio.get_running_loop(), follower)
        ticks.start()
        seen = [ticks.running]
        on((1,), ctx)
        seen.append(ticks.running)
        await asyncio.sleep(5 * follower.tick_period)
        seen.append(ticks.running)
        on((0,), ctx)
        seen.append(ticks.running)
        ticks.close()
        return seen

    assert asyncio.run(run()) == [False, True, True, False]
