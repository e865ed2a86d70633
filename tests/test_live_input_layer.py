"""The live input belongs to a layer like any other sound (issue 16, with the sessions issue).

Config ``input.layer`` names it. The claims:

* its addresses are that layer's: another layer's sender gets ``/fail`` naming the layer, and
  ``/layer/N/input ...`` reaches it from anywhere;
* its settings are that layer's state: a subscriber of the layer receives them at once and every
  change after (the same addresses and types as the messages that set them), and a restart
  restores them from the state file;
* its voice is placed in the mix by that layer's pan (equal power, unity at the centre: a
  hard-left layer puts nothing in the right channel, peak < 1e-6, and the input's level +3 dB in
  the left, within 1 dB as tests/test_live_input.py holds a centred voice to its input's level).
"""

from __future__ import annotations

import dataclasses
import json
import signal
from pathlib import Path

import numpy as np
import pytest
import soundfile

from test_layers import drain
from test_live_input import write_phrase
from timbrespace import config
from timbrespace.render import ScoreInput, parse_score, render_score

from conftest import shipped_timbre_config, start_server, write_config

SR = 48000


def test_the_input_is_its_layers_addressed_fed_back_and_restored(tmp_path: Path) -> None:
    wav = tmp_path / "phrase.wav"
    write_phrase(wav)
    sections = {"layers": [{}, {}], "input": {"layer": 1}}
    s = start_server(tmp_path, "--input", str(wav), **sections)
    a, sub = s.client(), s.client()
    try:
        a.send("/input/target", "flute")  # a plays layer 0
        fail = a.expect("/fail").params
        assert fail[0] == "/input/target" and "belongs to layer 1" in fail[1] and "/layer/1/input/target" in fail[1]
        a.send("/input/status")
        assert "belongs to layer 1" in a.expect("/fail").params[1]
        sub.request("/hello", "sub")
        sub.request("/layer", 1)
        sub.send("/notify", 1)
        sub.expect("/done")
        first = drain(sub)
        assert first["/input"] == [0] and first["/input/target"] == ["trumpet"] and first["/input/gain"] == [0.0]
        for address, value in (("/layer/1/input/target", "flute"), ("/layer/1/input/gain", -6.0),
                               ("/layer/1/input/alpha", 0.5), ("/layer/1/input/gate", -40.0)):
            a.send(address, value)
        a.sync()
        seen = drain(sub)
        assert seen["/input/target"] == ["flute"] and seen["/input/gain"] == [-6.0]
        assert seen["/input/alpha"] == [0.5] and seen["/input/gate"] == [-40.0]
        a.send("/layer/1/input/gain", 99.0)
        assert "[-60, 24]" in a.expect("/fail").params[1]
        p = a.request("/layer/1/input/status", reply="/input/status.reply").params
        st = dict(zip(p[::2], p[1::2]))
        assert (st["target"], st["gain_db"], st["alpha"], st["gate_db"]) == ("flute", -6.0, 0.5, -40.0)
    finally:
        a.close()
        sub.close()
        assert s.stop(signal.SIGTERM) == 0
    saved = json.loads((tmp_path / "state.json").read_text())["layers"]
    assert "input" not in saved[0]
    assert saved[1]["input"] == {"on": False, "target": "flute", "alpha": 0.5, "gain": -6.0, "transpose": 0.0,
                                 "dry": 0.0, "gate": -40.0}
    s = start_server(tmp_path, "--input", str(wav), **sections)
    try:
        with s.client() as c:
            c.request("/hello", "again")
            c.request("/layer", 1)
            p = c.request("/input/status").params
            st = dict(zip(p[::2], p[1::2]))
            assert (st["target"], st["gain_db"], st["alpha"], st["gate_db"]) == ("flute", -6.0, 0.5, -40.0)
    finally:
        assert s.stop(signal.SIGTERM) == 0


def test_the_inputs_voice_is_placed_by_its_layers_pan(tmp_path: Path) -> None:
    wav = tmp_path / "saw.wav"
    t = np.arange(int(0.8 * SR)) / SR
    x = 0.3 * 2 * ((220.0 * t) % 1.0 - 0.5)
    soundfile.write(str(wav), x, SR, subtype="PCM_16")
    cfg = shipped_timbre_config(tmp_path)
    cfg = dataclasses.replace(cfg, layers=[config.LayerConfig(), config.LayerConfig(pan=-1.0)],
                              input=dataclasses.replace(cfg.input, layer=1))
    score = parse_score({"events": [{"time": 0.0, "address": "/layer/1/input", "args": [1]}], "duration": 0.8})
    score.input = ScoreInput(wav)
    y = np.asarray(render_score(cfg, score).audio, dtype=np.float64)
    held = slice(int(0.2 * SR), int(0.75 * SR))
    assert np.abs(y[:, 1]).max() < 1e-6  # nothing on the right
    level = np.sqrt(np.mean(y[held, 0] ** 2)) / np.sqrt(np.mean(x[held] ** 2))
    assert abs(20 * np.log10(level / np.sqrt(2.0))) < 1.0


def test_the_inputs_layer_must_be_one_of_the_layers(tmp_path: Path) -> None:
    with pytest.raises(config.ConfigError, match=r"input\.layer = 2 is not a layer; layers has 2 entries \(0 to 1\)"):
        config.load(write_config(tmp_path, layers=[{}, {}], input={"layer": 2}))
