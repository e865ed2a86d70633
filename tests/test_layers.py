"""Layers: several instruments on one server, each a whole one, mixed in the audio process.

Real servers, real sockets, real audio (recorded on the null backend and measured).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import OscClient, TcpOscClient, read_wav, start_server

SR = 48000


def drain(c: OscClient, quiet: float = 0.4) -> dict[str, list[Any]]:
    """Feedback until none came for ``quiet`` seconds: address (and /param name) -> last arguments."""
    state: dict[str, list[Any]] = {}
    while True:
        try:
            m = c.recv(quiet)
        except (TimeoutError, OSError):
            return state
        key = f"/param {m.params[0]}" if m.address == "/param" else m.address
        state[key] = m.params if m.address != "/param" else m.params[1:]


def test_layers_are_separate_instruments_addressed_by_choice_or_by_prefix(tmp_path: Path) -> None:
    s = start_server(tmp_path, layers=[{}, {}, {}])
    a, b, watcher = s.client(), s.client(), TcpOscClient(s.host, s.port)
    try:
        a.request("/hello", "ann")
        b.request("/hello", "bob")
        assert b.request("/layer", 1).params == [1]
        watcher.request("/hello", "watcher")
        watcher.request("/layer", 1)
        watcher.send("/notify", 1)
        assert watcher.expect("/done").params[0] == "/notify"
        drain(watcher)
        a.send("/latent", 0.1, 0.2)  # layer 0: the layer-1 watcher sees nothing of it
        a.sync()
        b.send("/latent", 0.7, 0.9)  # layer 1
        b.sync()
        seen = drain(watcher)
        assert seen["/latent"] == pytest.approx([0.7, 0.9], abs=1e-6)
        a.send("/layer/1/param", "filter_cutoff", 0.25)  # ann, on layer 0, reaches into layer 1
        a.sync()
        assert drain(watcher)["/param filter_cutoff"] == pytest.approx([0.25])
        # Each layer keeps its own point: layer 0's is still ann's.
        watcher.request("/layer", 0)
        assert drain(watcher)["/latent"] == pytest.approx([0.1, 0.2], abs=1e-6)  # its snapshot on switching
        a.send("/layer", 7)
        assert "out of range 0..2" in a.expect("/fail").params[1]
        a.send("/layer/1/status")
        assert "not a layer's address" in a.expect("/fail").params[1]
        a.send("/layer/9/latent", 0.5, 0.5)
        assert "layer 9 is out of range 0..2" in a.expect("/fail").params[1]
        clients = b.request("/clients").params[2:]
        layers = dict(zip(clients[1::3], clients[2::3]))
        assert layers["ann"] == 0 and layers["bob"] == 1
    finally:
        for c in (a, b, watcher):
            c.close()
        assert s.stop() == 0
    saved = json.loads((tmp_path / "state.json").read_text())["layers"]
    assert len(saved) == 3
    assert saved[0]["engines"]["patch"]["xy"] == pytest.approx([0.1, 0.2], abs=1e-6)
    assert saved[1]["engines"]["patch"]["xy"] == pytest.approx([0.7, 0.9], abs=1e-6)
    # A restart restores every layer.
    s = start_server(tmp_path, layers=[{}, {}, {}])
    try:
        with s.client() as c:
            c.request("/hello", "again")
            c.request("/layer", 1)
            c.send("/notify", 1)
            c.expect("/done")
            state = drain(c)
            assert state["/latent"] == pytest.approx([0.7, 0.9], abs=1e-6)
            assert state["/param filter_cutoff"] == pytest.approx([0.25])
    finally:
        assert s.stop() == 0


def band_db(x: np.ndarray, lo: float, hi: float) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
    f = np.fft.rfftfreq(len(x), 1 / SR)
    return float(10 * np.log10(spec[(f >= lo) & (f <= hi)].sum() + 1e-30))


def test_layers_are_mixed_where_their_pan_puts_them_and_one_cannot_take_anothers_voices(tmp_path: Path) -> None:
    out = tmp_path / "take.wav"
    # Layer 0 hard left, layer 1 hard right; 2 voices each, so layer 0 is full after two notes.
    s = start_server(tmp_path, "--record", str(out), audio={"backend": "null", "polyphony": 2},
                     layers=[{"pan": -1.0}, {"pan": 1.0}], state={"persist": False})
    try:
        with s.client() as a, s.client() as b:
            b.request("/layer", 1)
            for c in (a, b):
                c.send("/patch/load", "BriansBank01/Pianola")
                c.sync()
            b.send("/note", 69, 100)  # A4 on layer 1, the oldest note: a shared pool would steal its voice
            b.sync()
            for key in (48, 52, 55, 60):  # four notes on two voices: layer 0 steals its own voices only
                a.send("/note", key, 100)
            a.sync()
            time.sleep(1.0)
            for key in (48, 52, 55, 60):
                a.send("/note", key, 0)
            b.send("/note", 69, 0)
            b.sync()
    finally:
        assert s.stop() == 0
    audio = read_wav(out)
    assert np.isfinite(audio).all() and np.abs(audio).max() < 1.0
    # Found in the recording, not by the clock (a busy machine delays messages, not the audio):
    # layer 0's notes start after layer 1's, and both then sound for the second they are held.
    onset = int(np.argmax(np.abs(audio[:, 0]) > 1e-3))
    assert onset > 0, "layer 0 never sounded on the left"
    start = onset + int(0.05 * SR)
    seg = audio[start:start + int(0.6 * SR)]
    left, right = seg[:, 0], seg[:, 1]
    # A4 (440 Hz) is layer 1's alone: on the right, and 40 dB down (or more) on the left.
    assert band_db(right, 430, 450) > band_db(left, 430, 450) + 40
    # C4 (262 Hz), layer 0's latest note, is on the left and not on the right.
    assert band_db(left, 256, 267) > band_db(right, 256, 267) + 40
    assert band_db(right, 430, 450) > band_db(right, 1000, 1010) + 10  # a tone, not noise


def test_an_admin_places_a_layer_live_everyone_sees_it_and_a_restart_keeps_it(tmp_path: Path) -> None:
    """/mix/pan, /mix/gain and /collision set a layer live (admin only: tests/test_sessions.py):
    heard in the recording, fed back to the layer's subscribers, saved and restored."""
    out = tmp_path / "take.wav"
    s = start_server(tmp_path, "--record", str(out), layers=[{}, {}])
    a, watcher = s.client(), TcpOscClient(s.host, s.port)
    try:
        watcher.request("/layer", 1)
        watcher.send("/notify", 1, 0)
        watcher.expect("/done")
        first = drain(watcher)
        assert first["/mix/pan"] == [0.0] and first["/mix/gain"] == [1.0]
        assert first["/collision"] == ["last", pytest.approx(1.0)]
        a.send("/layer/1/patch/load", "BriansBank01/Pianola")
        a.send("/patch/load", "BriansBank01/Pianola")
        a.send("/layer/1/mix/pan", -1.0)  # layer 1 hard left, before any of its notes
        a.send("/layer/1/collision", "lock", 2.5)
        a.sync()
        a.send("/layer/1/note", 69, 100)  # A4 on layer 1: heard on the left only
        a.sync()
        time.sleep(0.8)
        a.send("/layer/1/note", 69, 0)
        a.send("/layer/1/mix/gain", 0.0)  # layer 1 silenced
        a.sync()
        a.send("/layer/1/note", 76, 100)  # E5 on layer 1: not heard at all
        a.send("/note", 60, 100)  # C4 on layer 0, centred: heard on both sides
        a.sync()
        time.sleep(0.8)
        a.send("/layer/1/note", 76, 0)
        a.send("/note", 60, 0)
        a.sync()
        seen = drain(watcher)
        assert seen["/mix/pan"] == [-1.0] and seen["/mix/gain"] == [0.0]
        assert seen["/collision"] == ["lock", pytest.approx(2.5)]
    finally:
        a.close()
        watcher.close()
        assert s.stop() == 0
    audio = read_wav(out)
    assert np.isfinite(audio).all() and np.abs(audio).max() < 1.0
    # Each phase found in the recording, not by the clock: the A4 starts on the left alone; the
    # right channel first sounds when layer 0's C4 starts (the A4 was released before).
    # (A pan or gain moves over a 20 ms ramp: the right may sound in the A4's first milliseconds.)
    a4 = int(np.argmax(np.abs(audio[:, 0]) > 1e-3))
    after = a4 + int(0.2 * SR)
    c4 = after + int(np.argmax(np.abs(audio[after:, 1]) > 1e-3))
    assert a4 > 0 and c4 > after, (a4, c4)
    first = audio[a4 + int(0.05 * SR):a4 + int(0.6 * SR)]
    assert band_db(first[:, 0], 430, 450) > band_db(first[:, 1], 430, 450) + 40  # A4: layer 1, panned left live
    second = audio[c4 + int(0.05 * SR):c4 + int(0.6 * SR)]
    assert band_db(second[:, 1], 256, 267) > band_db(second[:, 1], 650, 668) + 40  # C4 heard, E5 not
    assert band_db(second[:, 0], 256, 267) > band_db(second[:, 0], 650, 668) + 40  # E5: layer 1 at gain 0
    saved = json.loads((tmp_path / "state.json").read_text())["layers"][1]
    assert saved["mix"] == {"gain": 0.0, "pan": -1.0}
    assert saved["collision"] == {"policy": "lock", "hold": 2.5}
    s = start_server(tmp_path, layers=[{}, {}])
    try:
        with TcpOscClient(s.host, s.port) as c:
            c.request("/layer", 1)
            c.send("/notify", 1, 0)
            c.expect("/done")
            state = drain(c)
            assert state["/mix/pan"] == [-1.0] and state["/mix/gain"] == [0.0]
            assert state["/collision"] == ["lock", pytest.approx(2.5)]
    finally:
        assert s.stop() == 0
