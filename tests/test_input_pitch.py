"""The live input's pitch at a new note (audio/input_pitch.py): short windows for high notes, long for low.

Sawtooth notes are played into the input graph alone (no model) and measured on the voice's own
oscillator and amplitude, in rendered samples. The claims, in audio blocks of 256 samples:

* a note with two periods in the short window (10.7 ms = 512 samples, from 213 Hz) is at its pitch
  (within 25 cents, and stays there for the 150 ms measured) within four blocks of its onset: the
  block the onset falls in, the short window that begins after it (two blocks), and one more for
  the next short window's estimate, which corrects the first (read a few tens of cents low right
  after the attack), plus the 1 ms glide of that correction. (Long windows with a little of the
  silence before the attack in them read a sawtooth within 25 cents once the tracker's low-pass
  is at 8 kHz, so the long windows alone are no longer reliably later on these notes.)
* with ``input.onset: pitch`` such a note is silent until two estimates of it agree (short
  windows that do not overlap within 12.5 cents, or two long ones within 25), then sounds at its
  pitch, not gliding to it: off pitch while audible for at most the 1 ms glide;
* a note too low for the short window (150-200 Hz) is left to the long windows: at its pitch
  within two of them, never misled by the short trackers.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from timbrespace.link.input import InputSettings, InputShared

pytestmark = pytest.mark.numeric

SR, BLOCK = 48000, 256
F64 = npt.NDArray[np.float64]
NOTE_S, EVERY_S, MEASURED_S = 0.25, 0.4, 0.15
GLIDE_S = 0.001  # audio.live_input.GLIDE_S
HIGH = [233.0, 330.0, 262.0, 392.0, 247.0, 294.0, 349.0, 440.0, 277.0, 415.0, 311.0, 370.0]
LOW = [196.0, 150.0, 185.0, 155.0, 175.0, 165.0, 200.0, 160.0]


def play(pitches: list[float], onset: str, onset_window_ms: float) -> tuple[list[int], F64, F64]:
    """The notes' onsets (samples), the voice's f0 and amplitude. Onsets fall at every position
    within a block (37 samples further each note)."""
    from timbrespace.audio.live_input import LiveInput
    from timbrespace.audio.offline import OfflineRenderer
    from timbrespace.link.frames import FrameSlots
    from timbrespace.link.input import InputPlan

    starts = [int(0.05 * SR) // BLOCK * BLOCK + i * int(EVERY_S * SR) + (37 * i) % BLOCK for i in range(len(pitches))]
    x = np.zeros(starts[-1] + int(EVERY_S * SR), np.float32)
    n = int(NOTE_S * SR)
    for s, f in zip(starts, pitches, strict=True):
        x[s : s + n] = 0.3 * 2 * ((f * np.arange(n) / SR) % 1.0 - 0.5)
    shared = InputShared()
    with OfflineRenderer(SR, BLOCK, 2) as r:
        live = LiveInput(InputPlan(x, SR, False, (200.0, 800.0, 3200.0), 4096, 21.3, 4, onset, onset_window_ms),
                         shared, FrameSlots(1, 4096, 3), SR, BLOCK)
        f0_cap, amp_cap = r.capture(live.f0, len(x) / SR), r.capture(live.amp, len(x) / SR)
        shared.put(InputSettings(on=True))
        for _ in range(len(x) // BLOCK):
            live.block()
            r.process_block()
        f0, amp = f0_cap.array()[:, 0].astype(np.float64), amp_cap.array()[:, 0].astype(np.float64)
        live.close()
    return starts, f0, amp


def settle_times(starts: list[int], pitches: list[float], f0: F64) -> list[float]:
    """Seconds from each onset (the first note's left out: it finds the trackers empty) until the
    oscillator stays within 25 cents of the note."""
    out = []
    for s, f in zip(starts[1:], pitches[1:], strict=True):
        off = np.abs(1200 * np.log2(np.maximum(f0[s : s + int(MEASURED_S * SR)], 1.0) / f)) > 25.0
        out.append((np.flatnonzero(off)[-1] + 1) / SR if off.any() else 0.0)
    return out


def test_high_notes_take_their_pitch_from_the_short_window() -> None:
    bound = 4 * BLOCK / SR + GLIDE_S
    starts, f0, _ = play(HIGH, "sound", 10.7)
    late = [(f, t) for f, t in zip(HIGH[1:], settle_times(starts, HIGH, f0), strict=True) if t > bound]
    assert not late, late


def test_with_onset_pitch_high_notes_open_at_their_pitch() -> None:
    starts, f0, amp = play(HIGH, "pitch", 10.7)
    level = 0.3 / np.sqrt(3.0)  # a sawtooth's RMS
    for s, f in zip(starts[1:], HIGH[1:], strict=True):
        note = slice(s, s + int(MEASURED_S * SR))
        off = np.abs(1200 * np.log2(np.maximum(f0[note], 1.0) / f)) > 25.0
        heard = amp[note] > 0.01 * level  # -40 dB
        assert heard.any(), f
        assert np.sum(off & heard) / SR <= GLIDE_S, f


def test_low_notes_are_left_to_the_long_window() -> None:
    starts, f0, _ = play(LOW, "sound", 10.7)
    times = settle_times(starts, LOW, f0)
    assert max(times) < 2 * 1024 / SR, list(zip(LOW[1:], times, strict=True))
