"""The rating descriptor hears what the training descriptor averages away: attack, fluctuation, noise."""

from __future__ import annotations

import numpy as np
import pytest

from timbrespace.models import patch_hearing
from timbrespace.models import patch_rating_descriptor as rd

pytestmark = pytest.mark.numeric

SR = rd.SAMPLE_RATE
T = np.arange(2 * SR) / SR  # 2 s, as the hearing plays C4
C4_HZ = 261.63


def _tone(attack_s: float = 0.002) -> np.ndarray:
    """Three harmonics of C4 rising linearly over ``attack_s``, then held."""
    tone = sum(np.sin(2 * np.pi * k * C4_HZ * T) / k for k in (1, 2, 3))
    return tone * np.minimum(T / attack_s, 1.0)


def _col(name: str) -> int:
    return rd.NAMES.index(name)


def test_the_descriptor_starts_with_the_training_one_and_names_every_column() -> None:
    a = _tone()
    d = rd.describe(a)
    assert d is not None and d.shape == (rd.N_FEATURES,) == (len(rd.NAMES),)
    assert np.isfinite(d).all()
    np.testing.assert_array_equal(d[: patch_hearing.N_FEATURES], patch_hearing.describe(a))
    assert len(set(rd.NAMES)) == len(rd.NAMES)


def test_a_slow_attack_is_heard_as_one() -> None:
    fast, slow = rd.describe(_tone(0.002)), rd.describe(_tone(0.3))
    assert fast is not None and slow is not None
    # 20 ms into a 300 ms linear rise the level is 20 log10(20/300), 23.5 dB under the held note;
    # a 2 ms rise is there already, within the ripple of 5 ms frames on a 262 Hz tone (under 2 dB).
    assert slow[_col("attack_20ms")] == pytest.approx(20 * np.log10(20 / 300), abs=2.0)
    assert fast[_col("attack_20ms")] == pytest.approx(0.0, abs=2.0)
    # Within 6 dB of the peak: at half the rise (150 ms; the peak frame's ripple of up to 2 dB moves
    # it by up to a quarter) against the first 5 ms.
    assert np.exp(slow[_col("attack_log_s_to_6db")]) == pytest.approx(0.15, rel=0.25)
    assert np.exp(fast[_col("attack_log_s_to_6db")]) <= 0.005 + 1e-9
    # The training descriptor's first envelope part (250 ms) barely tells them apart.
    assert abs(slow[patch_hearing.N_MELS] - fast[patch_hearing.N_MELS]) < 6.0


def test_fast_tremolo_shows_in_its_band_and_modulation_range() -> None:
    carrier = np.sin(2 * np.pi * C4_HZ * T)  # in the 281 Hz band's neighbour: bins 94-281 Hz
    steady = rd.describe(carrier)
    rough = rd.describe(carrier * (1 + 0.5 * np.sin(2 * np.pi * 50 * T)))
    assert steady is not None and rough is not None
    band = "modulation_94hz_30-90hz"
    # A 50 Hz modulation of half the amplitude puts the envelope's power there; a steady tone has none
    # (only the window's leakage, tens of dB under).
    assert rough[_col(band)] - steady[_col(band)] > 20.0
    # The slow range is left alone.
    assert abs(rough[_col("modulation_94hz_1-8hz")] - steady[_col("modulation_94hz_1-8hz")]) < 10.0


def test_noise_is_flat_and_a_tone_is_not() -> None:
    rng = np.random.default_rng(0)
    noise, tone = rd.describe(rng.standard_normal(len(T))), rd.describe(_tone())
    assert noise is not None and tone is not None
    flat = [_col(n) for n in rd.NAMES if n.startswith("flatness_")]
    # The log ratio of geometric to arithmetic mean power: near 0 for white noise averaged over ~46
    # frames, far below for three partials in a band of thousands of bins' worth of silence.
    assert (noise[flat] > -0.2).all()
    assert tone[_col("flatness_281hz")] < -5.0


def test_silence_is_none_and_a_short_clip_is_refused() -> None:
    assert rd.describe(np.zeros(len(T))) is None
    assert rd.describe(np.full(len(T), np.nan)) is None
    with pytest.raises(ValueError, match=r"at least 0\.5 s"):
        rd.describe(np.ones(1000))
