"""The master bus (audio/master.py): transparent below its ceiling, never past full scale above it.

Generated signals through the real pyo objects (offline server), then a loud chord of the timbre
engine through the whole render chain: the sum of eight loud notes peaks well above full scale,
and what leaves the server stays under it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from timbrespace import config
from timbrespace.render import parse_score, render_score

from conftest import shipped_timbre_config

pytestmark = pytest.mark.numeric

SR = 48000
#: A 24-bit converter's step: "changes nothing" means nothing a DAC could play.
LSB_24 = 2.0**-23


@pytest.fixture()
def offline() -> Iterator[Any]:
    os.environ.setdefault("PYO_GUI_WX", "0")
    from timbrespace.audio.offline import OfflineRenderer

    with OfflineRenderer(sample_rate=SR, block_size=256, channels=2) as r:
        yield r


def through_bus(r: Any, left_amp: list[tuple[float, float]], right_scale: float,
                ceiling_db: float = -1.0) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """A 440/660 Hz stereo pair whose left amplitude follows ``left_amp`` (seconds, amplitude
    breakpoints; the right is ``right_scale`` times it), before and after the bus."""
    import pyo

    from timbrespace.audio.master import master_bus

    seconds = left_amp[-1][0]
    env = pyo.Linseg(left_amp).play()
    x = pyo.Sine([440.0, 660.0], mul=[env, env * right_scale])
    bus = master_bus(x, ceiling_db)
    before, after = r.capture(x, seconds), r.capture(bus.output, seconds)
    for _ in range(int(np.ceil(seconds * SR / 256)) + 1):
        r.process_block()
    return np.asarray(before.array(), np.float64), np.asarray(after.array(), np.float64)


def span(x: npt.NDArray[np.float64], t0: float, t1: float) -> npt.NDArray[np.float64]:
    return x[int(t0 * SR):int(t1 * SR)]


def test_below_the_ceiling_the_bus_changes_nothing(offline: Any) -> None:
    # Peaks at 0.85, just under -1 dBFS (0.891): the loudest a signal gets without the limiter.
    before, after = through_bus(offline, [(0.0, 0.85), (0.5, 0.85)], 0.5)
    assert np.abs(before).max() > 0.84
    assert np.abs(after - before).max() < LSB_24


def test_a_loud_sum_is_held_at_the_ceiling_and_never_past_full_scale(offline: Any) -> None:
    # Quiet, then 4x full scale (+12 dBFS) for half a second, then quiet again.
    before, after = through_bus(offline, [(0.0, 0.2), (0.3, 0.2), (0.3001, 4.0), (0.8, 4.0), (0.8001, 0.2),
                                          (2.0, 0.2)], 0.5)
    assert np.abs(before).max() > 3.9  # the sum itself is far over
    assert np.isfinite(after).all() and np.abs(after).max() <= 1.0
    ceiling = 10 ** (-1.0 / 20)
    held = np.abs(span(after, 0.4, 0.8)).max()  # past the attack: the limiter, not the clip
    assert abs(20 * np.log10(held / ceiling)) < 0.1
    # Stereo-linked: one gain for both channels, so the right stays half the left (-6.02 dB).
    ratio = np.abs(span(after[:, 1], 0.4, 0.8)).max() / held
    assert abs(20 * np.log10(ratio / 0.5)) < 0.1
    # Released: the quiet signal comes back whole within a second (0.3 s time constant).
    assert np.abs(span(after, 1.8, 2.0) - span(before, 1.8, 2.0)).max() < 1e-3


def test_the_ceiling_is_the_configured_one(offline: Any) -> None:
    _, after = through_bus(offline, [(0.0, 2.0), (0.6, 2.0)], 1.0, ceiling_db=-6.0)
    held = np.abs(span(after, 0.2, 0.6)).max()
    assert abs(20 * np.log10(held) - -6.0) < 0.1


def test_a_ceiling_at_or_above_full_scale_is_refused() -> None:
    from timbrespace.audio.master import ceiling_gain

    with pytest.raises(ValueError, match="master ceiling"):
        ceiling_gain(0.0)


@pytest.fixture(scope="module")
def cfg(tmp_path_factory: pytest.TempPathFactory) -> config.Config:
    return shipped_timbre_config(Path(tmp_path_factory.mktemp("master")))


def test_eight_loud_timbre_notes_leave_the_server_under_full_scale(cfg: config.Config) -> None:
    """The chord that peaks near +9 dBFS in the sum (the server's /status level_db says so)."""
    chord = (48, 55, 60, 64, 67, 72, 76, 79)
    events = [{"time": 0.0, "address": "/engine", "args": ["timbre"]},
              {"time": 0.0, "address": "/source", "args": ["saxophone"]},
              {"time": 0.0, "address": "/target", "args": ["saxophone"]},
              *({"time": 0.05, "address": "/note", "args": [n, 127]} for n in chord)]
    result = render_score(cfg, parse_score({"events": events, "duration": 1.5}))
    assert not result.failures, result.failures
    audio = np.asarray(result.audio, np.float64)
    assert np.isfinite(audio).all()
    peak = np.abs(audio).max()
    assert peak <= 1.0
    # Still loud: the limiter holds the chord at its ceiling, it does not duck it to a whisper.
    assert 20 * np.log10(np.abs(span(audio, 0.5, 1.5)).max()) > -2.0
