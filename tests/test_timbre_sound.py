"""The timbre engine with the shipped model, rendered offline and measured.

Scores go through the same app, engines and pyo voices as the live server (``render_score``);
the checks are numbers measured on the audio: pitch, level, how the spectrum moves with the
timbre point while a note holds, release to silence, and the engine switch.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from timbrespace import config
from timbrespace.models.timbre_space import TimbreSpace
from timbrespace.render import parse_score, render_score

from conftest import shipped_timbre_config

pytestmark = pytest.mark.numeric

SR = 48000
F64 = npt.NDArray[np.float64]


@pytest.fixture(scope="module")
def cfg(tmp_path_factory: pytest.TempPathFactory) -> config.Config:
    return shipped_timbre_config(tmp_path_factory.mktemp("timbre"))


def render(cfg: config.Config, events: list[dict[str, Any]], duration: float) -> F64:
    result = render_score(cfg, parse_score({"events": events, "duration": duration}))
    assert not result.failures, result.failures
    a = result.audio
    assert np.isfinite(a).all() and np.abs(a).max() <= 1.0
    return np.asarray(a[:, 0], dtype=np.float64)


def ev(t: float, address: str, *args: Any) -> dict[str, Any]:
    return {"time": t, "address": address, "args": list(args)}


def harmonic_f0(x: F64, nominal: float) -> float:
    """The fundamental from the harmonics' peaks near k*nominal (k = 1..6), weighted by their power."""
    n = len(x)
    spec = np.abs(np.fft.rfft(x * np.hanning(n)))
    est, weight = 0.0, 0.0
    for k in range(1, 7):
        lo, hi = int(k * nominal * 0.97 * n / SR), int(k * nominal * 1.03 * n / SR) + 1
        if hi + 1 >= len(spec):
            break
        i = lo + int(np.argmax(spec[lo:hi]))
        a, b, c = np.log(spec[i - 1 : i + 2] + 1e-12)
        f = (i + 0.5 * (a - c) / (a - 2 * b + c)) * SR / n / k
        est += f * spec[i] ** 2
        weight += spec[i] ** 2
    return est / weight


def centroid(x: F64) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    f = np.fft.rfftfreq(len(x), 1 / SR)
    return float((f * spec).sum() / spec.sum())


@pytest.mark.parametrize(("instrument", "pitch"), [("flute", 72), ("cello", 48), ("trumpet", 65)])
def test_notes_sound_at_their_exact_pitch(cfg: config.Config, instrument: str, pitch: int) -> None:
    x = render(cfg, [ev(0, "/engine", "timbre"), ev(0, "/source", instrument), ev(0, "/alpha", 0.0),
                     ev(0.05, "/note", pitch, 100), ev(1.2, "/note", pitch, 0)], 1.3)
    held = x[int(0.3 * SR) : int(1.1 * SR)]
    nominal = 440.0 * 2 ** ((pitch - 69) / 12)
    assert 1200 * np.log2(harmonic_f0(held, nominal) / nominal) == pytest.approx(0.0, abs=5.0)  # cents
    rms = np.sqrt(np.mean(held**2))
    assert 1e-3 < rms < 0.5


def test_alpha_moves_the_timbre_of_a_held_note(cfg: config.Config) -> None:
    events = [ev(0, "/engine", "timbre"), ev(0, "/source", "flute"), ev(0, "/target", "trumpet"),
              ev(0, "/alpha", 0.0), ev(0.05, "/note", 67, 100)]
    events += [ev(1.0 + 0.05 * k, "/alpha", min(1.0, 0.05 * (k + 1))) for k in range(20)]
    x = render(cfg, events, 2.6)
    before = x[int(0.5 * SR) : int(1.0 * SR)]
    after = x[int(2.1 * SR) : int(2.6 * SR)]
    ends = [render(cfg, [ev(0, "/engine", "timbre"), ev(0, "/source", i), ev(0, "/alpha", 0.0),
                         ev(0.05, "/note", 67, 100)], 1.5)[int(1.0 * SR) :] for i in ("flute", "trumpet")]
    # the held note ends up where a trumpet note starts out, not where the flute was
    assert abs(centroid(after) - centroid(ends[1])) < abs(centroid(after) - centroid(ends[0]))
    assert abs(centroid(before) - centroid(ends[0])) < abs(centroid(before) - centroid(ends[1]))
    assert 1200 * abs(np.log2(harmonic_f0(after, 392.0) / 392.0)) < 5.0


def test_released_notes_fall_silent_and_the_engines_switch(cfg: config.Config) -> None:
    x = render(cfg, [ev(0, "/engine", "timbre"), ev(0.05, "/note", 60, 110), ev(0.6, "/note", 60, 0),
                     ev(1.2, "/engine", "patch"), ev(1.3, "/note", 60, 110), ev(1.8, "/note", 60, 0)], 2.0)
    assert np.sqrt(np.mean(x[int(0.2 * SR) : int(0.6 * SR)] ** 2)) > 1e-3
    tail = x[int(0.6 * SR + (cfg.timbre.release + 0.03) * SR) : int(1.2 * SR)]
    assert np.abs(tail).max() < 1e-4
    assert np.sqrt(np.mean(x[int(1.4 * SR) : int(1.8 * SR)] ** 2)) > 1e-3  # the patch engine plays again


def test_the_shipped_model_names_the_papers_instruments(cfg: config.Config) -> None:
    space = TimbreSpace.load(cfg.timbre.model, device="cpu")
    assert space.instruments == ["piano", "violin", "cello", "english_horn", "french_horn", "trombone", "trumpet",
                                 "saxophone", "bassoon", "clarinet", "flute", "oboe"]
    # the learned map shipped beside it was fitted to this very model
    assert space.learned_map is not None, space.map_error


def test_the_learned_map_plays_each_instrument_where_its_notes_lie(cfg: config.Config) -> None:
    from timbrespace.models.checkpoint import load_checkpoint
    from timbrespace.models.timbre_map import map_path

    places = load_checkpoint(map_path(cfg.timbre.model)).metadata["figures"]["instrument_places"]
    events = [ev(0, "/engine", "timbre"), ev(0, "/map", "learned"), ev(0, "/latent", *places["flute"]),
              ev(0.05, "/note", 67, 100), ev(1.0, "/latent", *places["trumpet"])]
    x = render(cfg, events, 2.0)
    before, after = x[int(0.5 * SR) : int(1.0 * SR)], x[int(1.5 * SR) : int(2.0 * SR)]
    ends = [render(cfg, [ev(0, "/engine", "timbre"), ev(0, "/source", i), ev(0, "/alpha", 0.0),
                         ev(0.05, "/note", 67, 100)], 2.0) for i in ("flute", "trumpet")]
    flute, trumpet = (e[int(0.5 * SR) : int(1.0 * SR)] for e in ends)
    # at flute's place the held note sounds like the flute, and moves to the trumpet with the point
    assert abs(centroid(before) - centroid(flute)) < abs(centroid(before) - centroid(trumpet))
    assert abs(centroid(after) - centroid(ends[1][int(1.5 * SR) :])) < abs(centroid(after) - centroid(flute))
    assert 1200 * abs(np.log2(harmonic_f0(after, 392.0) / 392.0)) < 5.0
