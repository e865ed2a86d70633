"""The live input's pitch at a new note (audio/input_pitch.py): onset windows for notes from 142 Hz, long ones below.

Sawtooth notes are played into the input graph alone (no model) and measured on the voice's own
oscillator and amplitude, in rendered samples. The claims, in audio blocks of 256 samples:

* pyo's Yin takes winsize + 1 samples per estimate: the trackers' own count of where each window
  began and ended (which tells a window after the onset from one with the attack in it) is where
  pyo's estimates land, sample for sample, however far the windows have drifted from the blocks;
* a note with two periods in the short window (10.7 ms = 512 samples, from 213 Hz) is at its
  pitch (within 25 cents, and stays there for the 150 ms measured) within a block and a hop of
  the short window, less the fresh lead, and a sample (256 + 513 - 61 + 1 = 709 samples): a short
  window begins in every block, so the first fresh one (beginning at most FRESH_LEAD of its hop
  before the onset) begins less than a block after that, and its estimate is heard on the sample
  it lands (its tracker is armed at that block's start), not at the next block's start; most of
  these notes settle on a short tracker;
* a note too low for the short window but with two periods in the low onset window (16 ms = 768
  samples, from 142 Hz: 150-200 Hz here) is at its pitch within 256 + 769 - 92 + 1 = 934 samples
  (as above), never settles on a short tracker, and some settle on a low one. (Long windows with
  some of the silence before the attack in them often read a sawtooth within 25 cents, so the
  long trackers alone are not reliably later on these notes: what the onset trackers add is the
  bound, which holds whatever the windows' drift.) The notes' onsets are 101 samples further
  into a block each: the windows drift 37.4 (short) and 25 (low) samples against the blocks
  between two notes, so the onsets fall at every place against the windows too (a step of 37
  would follow the short windows' drift, every onset at one place against them);
* a new note's pitch is jumped to: the sample after the heard estimate jumps by more than 50
  cents, the oscillator is within 25 cents of it (no glide);
* with ``input.onset: pitch`` such a note is silent until two estimates of it agree, then sounds
  at its pitch: off pitch while audible for at most the 1 ms glide.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from timbrespace.audio.input_pitch import FRESH_LEAD, unmirror
from timbrespace.link.input import InputSettings, InputShared

pytestmark = pytest.mark.numeric

SR, BLOCK = 48000, 256
F64 = npt.NDArray[np.float64]
NOTE_S, EVERY_S, MEASURED_S = 0.25, 0.4, 0.15
GLIDE_S = 0.001  # audio.live_input.GLIDE_S
HIGH = [233.0, 330.0, 262.0, 392.0, 247.0, 294.0, 349.0, 440.0, 277.0, 415.0, 311.0, 370.0]
LOW = [196.0, 150.0, 185.0, 155.0, 175.0, 165.0, 200.0, 160.0]


STAGGER = 101  # samples further into a block each note's onset is (see above)
#: Of the last play(extra=True): each tracker's output, the pitch the voice follows (before the
#: glide), each tracker's window (samples) and the lowest estimate it is heard at (Hz).
TRACKS: list[npt.NDArray[np.float32]] = []
FOLLOWED: list[npt.NDArray[np.float32]] = []
WINDOWS: list[tuple[int, float]] = []


def play(pitches: list[float], onset: str, onset_window_ms: float, low_onset_window_ms: float = 16.0,
         extra: bool = False) -> tuple[list[int], F64, F64]:
    """The notes' onsets (samples), the voice's f0 and amplitude. Onsets fall at every position
    within a block (STAGGER samples further each note). ``extra``: also check the trackers' windows
    and the jumps (the claims above), on the same render."""
    from timbrespace.audio.live_input import LiveInput
    from timbrespace.audio.offline import OfflineRenderer
    from timbrespace.link.frames import FrameSlots
    from timbrespace.link.input import InputPlan

    first = int(0.05 * SR) // BLOCK * BLOCK
    starts = [first + i * int(EVERY_S * SR) + (STAGGER * i) % BLOCK for i in range(len(pitches))]
    x = np.zeros(starts[-1] + int(EVERY_S * SR), np.float32)
    n = int(NOTE_S * SR)
    for s, f in zip(starts, pitches, strict=True):
        x[s : s + n] = 0.3 * 2 * ((f * np.arange(n) / SR) % 1.0 - 0.5)
    shared = InputShared()
    with OfflineRenderer(SR, BLOCK, 2) as r:
        live = LiveInput(InputPlan(x, SR, False, (200.0, 800.0, 3200.0), 4096, 21.3, 4, onset, onset_window_ms,
                                   low_onset_window_ms=low_onset_window_ms),
                         shared, FrameSlots(1, 4096, 3), SR, BLOCK)
        f0_cap, amp_cap = r.capture(live.f0, len(x) / SR), r.capture(live.amp, len(x) / SR)
        pitch = live.pitch
        yins = [r.capture(y, len(x) / SR) for y in pitch.yins] if extra else []
        heard = r.capture(live._heard_f0, len(x) / SR) if extra else None
        landed: list[tuple[int, int, int, int]] = []  # (tracker, block, its window's last sample, hop) as counted
        shared.put(InputSettings(on=True))
        for b in range(len(x) // BLOCK):
            live.block()
            if extra:
                landed += [(k, b, pitch._window_start(k, b) + pitch._hops[k] - 1, pitch._hops[k])
                           for k in pitch._playing if (b - pitch._began[k]) * BLOCK >= pitch._hops[k]]
            r.process_block()
        f0, amp = f0_cap.array()[:, 0].astype(np.float64), amp_cap.array()[:, 0].astype(np.float64)
        if extra:
            TRACKS[:] = [c.array()[: len(x) // BLOCK * BLOCK, 0] for c in yins]
            check_windows(TRACKS, landed)
            assert heard is not None
            FOLLOWED[:] = [heard.array()[:, 0]]
            WINDOWS[:] = [(hop - 1, floor) for hop, floor in zip(pitch._hops, pitch._floors, strict=True)]
            check_jumps(heard.array()[:, 0].astype(np.float64), f0)
        live.close()
    return starts, f0, amp


def check_windows(ys: list[npt.NDArray[np.float32]], landed: list[tuple[int, int, int, int]]) -> None:
    """Each tracker's output changes (a new estimate) only at samples where the trackers count one
    of its windows ending, and the last window they count before a block ended in the hop before it."""
    for k, y in enumerate(ys):
        ends = {e for j, _, e, _ in landed if j == k}
        changed = np.flatnonzero(np.diff(y) != 0) + 1
        assert changed.size, k
        assert set(changed.tolist()) <= ends, (k, sorted(set(changed.tolist()) - ends)[:5])
        for _, b, e, hop in (t for t in landed if t[0] == k):
            assert b * BLOCK - hop <= e < b * BLOCK, (k, b, e)


def check_jumps(heard: F64, f0: F64) -> None:
    """Where the heard estimate jumps by over 50 cents at a block's start (where the trackers choose
    it; a heard tracker's own new estimate lands within a block, and is glided), the oscillator is
    within 25 cents of it a sample later."""
    steps = np.arange(BLOCK, len(f0) - 1, BLOCK)
    steps = steps[(heard[steps - 1] > 0) & (heard[steps + 1] > 0)]
    steps = steps[np.abs(1200 * np.log2(heard[steps] / heard[steps - 1])) > 50]
    assert steps.size
    off = np.abs(1200 * np.log2(np.maximum(f0[steps + 1], 1.0) / heard[steps + 1])) > 25.0
    assert not off.any(), steps[off][:5]


def settle_times(starts: list[int], pitches: list[float], f0: F64) -> list[float]:
    """Seconds from each onset (the first note's left out: it finds the trackers empty) until the
    oscillator stays within 25 cents of the note."""
    out = []
    for s, f in zip(starts[1:], pitches[1:], strict=True):
        off = np.abs(1200 * np.log2(np.maximum(f0[s : s + int(MEASURED_S * SR)], 1.0) / f)) > 25.0
        out.append((np.flatnonzero(off)[-1] + 1) / SR if off.any() else 0.0)
    return out


def heard_at_settling(starts: list[int], pitches: list[float], f0: F64) -> list[int]:
    """The window (samples) of the tracker whose estimate the voice follows at the sample each note
    settled at (last play(extra=True)): the tracker chosen at a block's start, or one armed for
    the block that landed before it (a note whose period is a whole number of samples can read the
    same in two trackers: the one under its floor is not heard)."""
    times = settle_times(starts, pitches, f0)
    out = []
    for s, t in zip(starts[1:], times, strict=True):
        i = s + round(t * SR)
        # The voice follows a tracker's estimate unmirrored (input_pitch.unmirror) in pyo's float32.
        out.append(next(WINDOWS[k][0] for k, y in enumerate(TRACKS)
                        if y[i] >= WINDOWS[k][1] and np.isclose(unmirror(float(y[i]), SR), FOLLOWED[0][i], rtol=1e-5)))
    return out


def test_high_notes_take_their_pitch_from_the_short_window() -> None:
    bound = (BLOCK + 513 - int(FRESH_LEAD * 513) + 1) / SR
    starts, f0, _ = play(HIGH, "sound", 10.7, extra=True)
    late = [(f, t) for f, t in zip(HIGH[1:], settle_times(starts, HIGH, f0), strict=True) if t > bound]
    assert not late, late
    assert heard_at_settling(starts, HIGH, f0).count(512) > len(HIGH) // 2  # the short trackers, mostly


def test_with_onset_pitch_high_notes_open_at_their_pitch() -> None:
    starts, f0, amp = play(HIGH, "pitch", 10.7)
    level = 0.3 / np.sqrt(3.0)  # a sawtooth's RMS
    for s, f in zip(starts[1:], HIGH[1:], strict=True):
        note = slice(s, s + int(MEASURED_S * SR))
        off = np.abs(1200 * np.log2(np.maximum(f0[note], 1.0) / f)) > 25.0
        heard = amp[note] > 0.01 * level  # -40 dB
        assert heard.any(), f
        assert np.sum(off & heard) / SR <= GLIDE_S, f


def test_low_notes_take_their_pitch_within_the_low_onset_window() -> None:
    bound = (BLOCK + 769 - int(FRESH_LEAD * 769) + 1) / SR
    starts, f0, _ = play(LOW, "sound", 10.7, extra=True)
    times = settle_times(starts, LOW, f0)
    assert max(times) <= bound, list(zip(LOW[1:], times, strict=True))
    windows = heard_at_settling(starts, LOW, f0)
    assert 512 not in windows and 768 in windows, windows  # never the short trackers; the low ones reach the voice
