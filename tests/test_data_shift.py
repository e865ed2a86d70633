"""Shifted copies (issue 17): another key's sample, resampled to the labelled pitch, through real
FluidSynth; and ``data soundfont --shifted`` writing them as training notes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from timbrespace.data import manifest as mf
from timbrespace.data import mix, shift, soundfont
from timbrespace.data.fluid import FluidRenderer
from timbrespace.data.soundfont import DEFAULT_SOUNDFONT

from conftest import note_f0 as f0
from conftest import read_mono16 as read

pytestmark = [pytest.mark.numeric,
              pytest.mark.skipif(not DEFAULT_SOUNDFONT.is_file(), reason="apt-get install fluid-soundfont-gm")]

SR = 22050


def rms_db(x: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(x**2)) + 1e-12))


def harmonics_db(x: np.ndarray, f: float, n: int = 8) -> np.ndarray:
    """The first ``n`` harmonics' levels relative to the fundamental's (the sample's spectral shape)."""
    seg = x[int(0.2 * SR):int(1.4 * SR)]
    power = np.abs(np.fft.rfft(seg * np.hanning(seg.size), 1 << 18))
    freqs = np.fft.rfftfreq(1 << 18, 1 / SR)
    levels = np.array([20 * np.log10(power[(freqs > h * f * 0.97) & (freqs < h * f * 1.03)].max() + 1e-9)
                       for h in range(1, n + 1)])
    return levels - levels[0]


@pytest.mark.parametrize(("program", "pitch", "k"), [(40, 69, 4), (40, 69, -4), (71, 62, 5)])
def test_a_shifted_copy_sounds_at_its_label_with_the_other_keys_spectrum(program: int, pitch: int, k: int) -> None:
    with FluidRenderer(DEFAULT_SOUNDFONT, SR) as r:
        x = np.asarray(shift.render(r, 0, program, pitch, 100, k, 1.5, 2.0, SR), np.float64)
        plain = np.asarray(r.render(0, program, pitch, 100, 1.5, 2.0), np.float64)
        source = np.asarray(r.render(0, program, pitch - k, 100, 1.5, 2.0), np.float64)
    assert x.shape == (2 * SR,)
    hz = 440 * 2 ** ((pitch - 69) / 12)
    assert abs(1200 * np.log2(f0(x) / hz)) < 25  # the label's pitch claim
    held, tail = rms_db(x[int(1.3 * SR):int(1.5 * SR)]), rms_db(x[int(1.8 * SR):])
    assert held > -45 and tail < held - 12  # held up to the label's note-off, released after it
    assert abs(x[: int(0.005 * SR)]).max() < abs(x).max()  # no resampler ringing before the attack
    # Its harmonics keep the shape of key pitch-k's sample, not of the key it is labelled with.
    ours = harmonics_db(x, hz)
    to_source = float(np.abs(ours - harmonics_db(source, hz * 2 ** (-k / 12))).mean())
    to_plain = float(np.abs(ours - harmonics_db(plain, hz)).mean())
    assert to_source < to_plain / 2, (to_source, to_plain)


def test_draw_is_seeded_by_name_non_zero_and_within_the_allowed_keys() -> None:
    allowed = {-3, -1, 2, 5, 9}
    draws = [shift.draw(f"violin_{i}", allowed, max_shift=6) for i in range(200)]
    assert set(draws) == {-3, -1, 2, 5}  # 9 is beyond max_shift, 0 is never drawn
    assert draws == [shift.draw(f"violin_{i}", allowed, max_shift=6) for i in range(200)]
    assert shift.draw("violin_0", {0, 7}, max_shift=6) is None
    with pytest.raises(ValueError, match="max_shift"):
        shift.draw("x", allowed, max_shift=0)
    with pytest.raises(ValueError, match="outside MIDI"):
        shift.render(None, 0, 0, 125, 100, -4, 1.5, 2.0, SR)  # type: ignore[arg-type]


def test_build_adds_shifted_training_copies_from_training_keys_only(tmp_path: Path) -> None:
    pitches = range(60, 72)
    r = soundfont.build(tmp_path, instruments=["clarinet"], pitches=pitches, velocities=(100,), shifted=1,
                        max_shift=3)
    plain = [n for n in r.manifest.notes if not n.augment]
    copies = [n for n in r.manifest.notes if n.augment]
    side = {n.pitch: n.split for n in plain}
    assert sorted(n.pitch for n in plain) == list(pitches)
    assert sorted(n.pitch for n in copies) == sorted(p for p, s in side.items() if s == "train")
    for n in copies:
        k = int(n.augment["shift_semitones"])
        assert n.split == "train" and 1 <= abs(k) <= 3 and side[n.pitch - k] == "train"
        assert n.file == f"clarinet/clarinet_{n.pitch:03d}_v100_s0{k:+d}.wav"
        assert abs(1200 * np.log2(f0(read(tmp_path / n.file)) / (440 * 2 ** ((n.pitch - 69) / 12)))) < 25
    assert mf.load(tmp_path).notes == r.manifest.notes
    again = soundfont.build(tmp_path, instruments=["clarinet"], pitches=pitches, velocities=(100,), shifted=1,
                            max_shift=3)
    assert again.rendered == 0 and again.manifest.notes == r.manifest.notes  # deterministic and incremental
    # A mix keeps each copy's shift, on the linked copy and under its room and microphone copies.
    mixed = mix.build([tmp_path], tmp_path / "mix", copies=1).manifest.notes
    shifts = {n.file: n.augment["shift_semitones"] for n in copies}
    for n in mixed:
        stem = n.file.split("/", 1)[1].replace("_aug0", "")
        if stem in shifts:
            assert n.augment["shift_semitones"] == shifts[stem]
    assert sum("shift_semitones" in n.augment and "room_wet" in n.augment for n in mixed) == len(copies)
    with pytest.raises(soundfont.DataError, match="--max-shift"):
        soundfont.build(tmp_path, instruments=["clarinet"], pitches=pitches, shifted=1, max_shift=0)
