"""The timbre engine in the live server: /engine, notes over UDP, the recording, state, refusals."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import read_wav, start_server

pytestmark = pytest.mark.numeric


def test_engine_switch_plays_timbre_notes_at_pitch_and_persists(tmp_path: Path) -> None:
    out = tmp_path / "take.wav"
    s = start_server(tmp_path, "--record", str(out))
    try:
        c = s.client()
        assert c.status()["engine"] == "patch"
        c.send("/engine", "timbre")
        c.sync(1)
        assert c.status()["engine"] == "timbre"
        c.send("/map", "learned")  # the shipped map; the transfer below then places the point
        c.send("/source", "French horn")
        c.send("/alpha", 0.0)
        c.send("/note", 69, 100)
        c.sync(2)
        time.sleep(1.2)
        c.send("/note", 69, 0)
        c.sync(3)
        time.sleep(0.6)
        c.send("/engine", "organ")
        fail = c.expect("/fail")
        assert fail.params[0] == "/engine" and "unknown engine 'organ'" in fail.params[1]
        c.send("/corners", "flute", "tuba", 1, 2)
        fail = c.expect("/fail")
        assert "unknown instrument 'tuba'" in fail.params[1] and "french_horn" in fail.params[1]
        c.send("/map", "grid")
        fail = c.expect("/fail")
        assert fail.params[0] == "/map" and "unknown map 'grid'; expected one of: corners, learned" in fail.params[1]
        c.close()
    finally:
        assert s.stop(signal.SIGTERM) == 0
    state = json.loads((tmp_path / "state.json").read_text())
    layer0 = state["layers"][0]
    assert layer0["active"] == "timbre" and layer0["engines"]["timbre"]["source"] == "french_horn"
    assert layer0["engines"]["timbre"]["map"] == "learned"
    audio = read_wav(out)[:, 0]
    env = np.sqrt(np.convolve(audio**2, np.ones(2400) / 2400, mode="same"))
    loud = np.flatnonzero(env > 0.2 * env.max())
    held = audio[loud[0] + 9600 : loud[-1] - 9600]  # well inside the note
    assert len(held) > 24000
    spec = np.abs(np.fft.rfft(held * np.hanning(len(held))))
    f = np.fft.rfftfreq(len(held), 1 / 48000)
    band = (f > 420) & (f < 460)
    k = np.flatnonzero(band)[np.argmax(spec[band])]
    a, b, cc = np.log(spec[k - 1 : k + 2])
    f0 = (k + 0.5 * (a - cc) / (a - 2 * b + cc)) * 48000 / len(held)
    assert abs(1200 * np.log2(f0 / 440.0)) < 5.0
    # the restart comes back on the timbre engine, with its state
    s2 = start_server(tmp_path)
    try:
        c = s2.client()
        assert c.status()["engine"] == "timbre"
        c.close()
    finally:
        s2.stop()


def test_a_server_without_the_timbre_model_refuses_it_by_name(tmp_path: Path) -> None:
    s = start_server(tmp_path, timbre={"enabled": False})
    try:
        c = s.client()
        c.send("/engine", "timbre")
        fail = c.expect("/fail")
        assert "the 'timbre' engine is not running on this server (running: patch)" in fail.params[1]
        c.send("/z", 0, 1.0)
        fail = c.expect("/fail")
        assert fail.params[0] == "/z" and "timbre engine, which is not running" in fail.params[1]
        assert c.status()["engine"] == "patch"
        c.close()
    finally:
        s.stop()


def test_a_message_for_the_engine_not_heard_says_so(tmp_path: Path) -> None:
    """Issue 19: a patch-engine client meeting a server left on the timbre engine (and back)."""
    s = start_server(tmp_path)
    try:
        c = s.client()
        c.send("/engine", "timbre")
        c.send("/source", "BriansBank01/basic11")
        fail = c.expect("/fail")
        assert fail.params[0] == "/source"
        assert ("the timbre engine is heard; 'BriansBank01/basic11' names a patch preset: send /engine patch first"
                in fail.params[1]), fail.params
        # Loaded all the same (it can be prepared), but the reply says it is not what is heard.
        reply = c.request("/patch/load", "BriansBank02/WowPad")
        assert reply.params[1] == "BriansBank02/WowPad"
        assert reply.params[4].startswith("not heard: the timbre engine is heard; send /engine patch")
        c.send("/target", "nosuchthing")  # a name neither engine knows keeps the engine's own reason
        assert "unknown instrument 'nosuchthing'" in c.expect("/fail").params[1]
        c.send("/engine", "patch")
        assert c.request("/patch/load", "BriansBank02/WowPad").params[4] == "heard"
        c.send("/target", "french_horn")
        fail = c.expect("/fail")
        assert "the patch engine is heard; 'french_horn' names a timbre instrument: send /engine timbre first" \
            in fail.params[1], fail.params
        c.close()
    finally:
        s.stop()


def test_z_index_range_is_the_models_and_the_doc_says_so(tmp_path: Path) -> None:
    """Issue 19: docs/protocol.md gave /z index 0-63 while the shipped model has 16 dimensions."""
    from timbrespace.protocol.addresses import BY_PATH

    doc = BY_PATH["/z"].args[0].doc
    assert "0-15 for the shipped model, which has 16" in doc
    s = start_server(tmp_path)
    try:
        c = s.client()
        c.send("/engine", "timbre")
        c.send("/z", 16, 1.0)
        fail = c.expect("/fail")
        assert fail.params[0] == "/z" and "16 is out of range 0..15 (the timbre code's dimensions)" in fail.params[1]
        c.send("/z", 15, 1.0)
        c.sync(1)  # taken: no /fail before the /synced
        c.close()
    finally:
        s.stop()
