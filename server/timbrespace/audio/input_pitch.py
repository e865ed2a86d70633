"""The live input's pitch: pyo Yins of two window lengths, the one heard chosen at each block.

::

    input ─┬─ N long Yins (window = hop, staggered) ──┐
           └─ M short Yins (one block apart) ─────────┴─ Selector (the tracker heard) ─▶ f0

pyo's Yin analyses non-overlapping windows (its hop is its window), and two periods of the lowest
pitch must fit in one. The long window (``input.window``) reaches low notes and holds a steady
pitch; N of them, started window/N apart, refresh it N times a window. A new note's pitch still
needs about a long window: the short Yins (``input.onset_window``, one started each block)
answer sooner for notes high enough for two of their periods to fit in the short window (below
that they find nothing, or a dip near their longest lag, which is left out).

At a note's onset (the level crossing the gate) the voice hears a short tracker whose window
began after the onset's first sample over the gate (or with at most FRESH_LEAD of it before:
pyo's Yin's input low-pass, set high, then reads it as a steady window), or whose estimate agrees
within 25 cents with the short estimate before it (pyo's Yin takes winsize + 1 samples per estimate, so its
windows drift a sample a window against the blocks: where each began is counted in samples);
a later short estimate within a semitone replaces it (the first window after an attack reads a
few tens of cents low). With ``input.onset: pitch`` the voice opens once two
estimates agree: a short one within 12.5 cents of one whose window ended before its own began
(overlapping windows share the attack's bias), or two long windows after the onset within 25
cents. The first long window that began after the onset takes over if it is within 12.5 cents
of the short pitch heard, else the next long one that agrees (a long window right after the
attack reads low too, or an octave off). From then on, and for notes too low for the short
window, the long trackers are heard, each new estimate as it lands, except one about an octave
from the pitch heard (a Yin's typical error), until another tracker's last estimate agrees with
it. A jump of the heard pitch by over 50 cents (a new note's) is not glided (the voice's phasor
keeps its phase).

The choice is made in Python at each block's start, from each tracker's last value: a few reads
and comparisons, never a wait.
"""

from __future__ import annotations

import math
from typing import Any

import pyo

from timbrespace.link.input import MAX_F0, min_f0, window_for

#: Two estimates this close (in octaves) agree: the issue's bound on a heard pitch's error.
AGREE_OCTAVES = 25.0 / 1200.0
#: With input.onset "pitch" the voice opens on a pair: closer, so that the pitch it opens at is
#: within 25 cents of the note's even when both lean the same way.
PAIR_OCTAVES = 12.5 / 1200.0
#: A new long estimate this far (in octaves) from the one heard is a Yin's octave error until
#: another tracker agrees with it.
OCTAVE_ERROR = 1.0 - 0.1
#: Once a short estimate is heard, a later one this close (octaves) replaces it: the first window
#: after an attack can read a few tens of cents low.
CORRECT_OCTAVES = 100.0 / 1200.0
#: The heard pitch moving further than this (octaves) in a block is a new note's: jumped to, not glided.
JUMP_OCTAVES = 50.0 / 1200.0
YIN_TOLERANCE = 0.2  # pyo's default: the dip the Yin difference function must reach
#: Hz: the Yin's input low-pass (a one-pole). Its transient at an attack biases a window with the
#: onset in it (at 2 kHz up to 33 cents low with 6 % of a 512 window before the onset); at 8 kHz
#: such a window reads as a steady one's (within 20 cents) while the first harmonics up to MAX_F0 pass.
YIN_CUTOFF = 8000.0
#: At most this fraction of a window before the onset and its estimate is fresh (measured at
#: YIN_CUTOFF on sawtooth onsets: within 20 cents, as windows after the onset; at a fifth of the
#: window octave errors begin).
FRESH_LEAD = 0.12
#: Short estimates this close to the lowest pitch of the short window are left out: there its Yin
#: finds a dip near its longest lag for lower notes (a 150 Hz note read as 190 Hz in a 512 window).
SHORT_MARGIN = 2.0 ** (2.0 / 12.0)


def _agree(a: float, b: float, octaves: float = AGREE_OCTAVES) -> bool:
    return a > 0.0 and b > 0.0 and abs(math.log2(a / b)) < octaves


def _octave_off(a: float, b: float) -> bool:
    """``a`` is about an octave (or more) from ``b``: a Yin's typical error."""
    return a > 0.0 and b > 0.0 and abs(math.log2(a / b)) > OCTAVE_ERROR


class InputPitch:
    """The trackers, their staggered starts and the choice of the one heard (:attr:`f0`)."""

    def __init__(self, signal: Any, sample_rate: float, block_size: int, window_ms: float, trackers: int,
                 onset_window_ms: float, agree_first: bool = False) -> None:
        self.window = window_for(window_ms, sample_rate)
        self.min_f0 = min_f0(self.window, sample_rate)
        self.block_size = block_size
        self.window_blocks = max(1, self.window // block_size)
        n = max(1, min(trackers, self.window_blocks))
        stagger = self.window_blocks // n  # blocks between two long trackers' starts
        self.short_window = window_for(onset_window_ms, sample_rate) if onset_window_ms > 0.0 else 0
        if self.short_window >= self.window:
            raise ValueError(f"input.onset_window ({onset_window_ms} ms: {self.short_window} samples) must be "
                             f"shorter than input.window ({window_ms} ms: {self.window} samples)")
        # One short tracker a block: the first estimate of a window after the onset a block sooner.
        m = max(1, self.short_window // block_size) if self.short_window else 0
        self.short_min_f0 = min_f0(self.short_window, sample_rate) if m else math.inf
        self._short_blocks = max(1, self.short_window // block_size)
        self._short_floor = self.short_min_f0 * SHORT_MARGIN
        self._agree_first = agree_first
        self._pair = PAIR_OCTAVES if agree_first else AGREE_OCTAVES
        self._long = n
        # pyo's Yin fills winsize + 1 samples before each estimate (its hop; the analysis uses the
        # first winsize - 1): its windows drift a sample a window against the blocks, so where a
        # window began is worked out from the samples each tracker has taken, not from blocks.
        self._hops = [self.window + 1] * n + [self.short_window + 1] * m
        self.yins = [pyo.Yin(signal, tolerance=YIN_TOLERANCE, minfreq=self.min_f0, maxfreq=MAX_F0,
                             cutoff=YIN_CUTOFF, winsize=self.window) for _ in range(n)]
        self.yins += [pyo.Yin(signal, tolerance=YIN_TOLERANCE, minfreq=self.short_min_f0, maxfreq=MAX_F0,
                              cutoff=YIN_CUTOFF, winsize=self.short_window) for _ in range(m)]
        #: (block, tracker) in the order they start: the first /input 1 starts them one by one.
        self._starts = sorted([(k * stagger, k) for k in range(n)] + [(j, n + j) for j in range(m)])
        self._began = [0] * len(self.yins)  # the block each tracker started at
        self._next = 0
        self._playing: list[int] = []
        self._blocks = 0  # blocks analysed while on
        self._values = [0.0] * len(self.yins)
        self._heard = 0
        # pyo's Selector crashes the process with a single input: one tracker is heard directly.
        self.f0 = pyo.Selector(self.yins, voice=0.0) if len(self.yins) > 1 else pyo.Sig(self.yins[0])
        self._b_select = list(self.f0._base_objs) if len(self.yins) > 1 else []
        self._quiet = -1  # the last block that ended under the gate
        self._onset = 0  # the onset's first sample over the gate (samples since the trackers began)
        self._settled = False  # a long window that began after the onset has landed
        self._short_ok = False  # a short estimate was trusted since the onset (fresh, or a pair)
        self._short_last = 0.0  # the last short estimate since the onset (0: none)
        #: Short estimates since the onset, (block, f0): input.onset pitch pairs windows that do not overlap.
        self._short_seen: list[tuple[int, float]] = []
        self._long_fresh = 0.0  # the last long estimate from a window after the onset (0: none)
        #: The heard pitch is the note's: a short pair agreed, or two fresh long estimates did.
        self.known = False
        #: The heard pitch moved by more than JUMP_OCTAVES at this block (a new note).
        self.jumped = False
        self._last = 0.0

    def play(self) -> None:
        """Start the trackers started so far (stopped together, they kept their stagger)."""
        self.f0.play()
        for k in self._playing:
            self.yins[k].play()

    def stop(self) -> None:
        self.f0.stop()
        for y in self.yins:
            y.stop()

    def _hear(self, k: int) -> None:
        if k != self._heard:
            self._heard = k
            for b in self._b_select:
                b.setVoice(float(k))

    def _window_start(self, k: int, b: int) -> int:
        """The first sample of tracker ``k``'s latest window at block ``b``'s start (samples since the
        trackers began)."""
        hop = self._hops[k]
        taken = (b - self._began[k]) * self.block_size
        return self._began[k] * self.block_size + (taken // hop - 1) * hop

    def block(self, loud: bool, onset: int = 0) -> float:
        """At a block's start (``loud``: the level at the last block's end was above the gate;
        ``onset``: at the first such block, the first sample of the last block over the gate): the
        trackers due started, the one heard chosen; its f0 (Hz, 0 before any estimate).

        An estimate is fresh when its window began after the onset's sample (or at most FRESH_LEAD
        of it before): a window with more of the silence before the attack reads low, or an octave off.
        """
        b = self._blocks
        while self._next < len(self._starts) and self._starts[self._next][0] == b:
            k = self._starts[self._next][1]
            self.yins[k].play()
            self._began[k] = b
            self._playing.append(k)
            self._next += 1
        self._blocks += 1
        if not loud:
            self._quiet = b - 1
            self._settled = self._short_ok = self.known = False
            self._short_last = self._long_fresh = 0.0
            self._short_seen.clear()
        elif self._quiet == b - 2:  # the first block over the gate: the onset fell in the last one
            self._onset = (b - 1) * self.block_size + onset
        values = self._values
        for k in self._playing:
            v = float(self.yins[k].get())
            if v == values[k]:
                continue
            values[k] = v
            fresh = loud and self._window_start(k, b) >= self._onset - FRESH_LEAD * self._hops[k]
            if k < self._long:
                self._long_update(k, v, fresh)
            elif loud and not self._settled and v >= self._short_floor:
                if self._agree_first:
                    # Overlapping windows share the attack's bias: the pair is a window and one
                    # that ended before it began.
                    before = [u for c, u in self._short_seen if b - c >= self._short_blocks]
                    trusted = bool(before) and _agree(v, before[-1], self._pair)
                    self._short_seen.append((b, v))
                    del self._short_seen[: -(self._short_blocks + 1)]  # one lands each block: enough to pair
                else:
                    trusted = fresh or _agree(v, self._short_last)
                if trusted:
                    self._short_ok = self.known = True
                    self._hear(k)
                elif self._short_ok and _agree(v, values[self._heard], CORRECT_OCTAVES):
                    self._hear(k)  # a later window, further from the attack: closer to the note's pitch
                self._short_last = v
        f0 = values[self._heard]
        self.jumped = not _agree(f0, self._last, JUMP_OCTAVES)
        self._last = f0
        return f0

    def _long_update(self, k: int, v: float, fresh: bool) -> None:
        if fresh:
            self.known = self.known or _agree(v, self._long_fresh)
            self._long_fresh = v
            # The first fresh long window takes over if it is close to the short pitch heard.
            if not self._settled and (not self._short_ok or _agree(v, self._values[self._heard], PAIR_OCTAVES)):
                self._settled = True
                self._hear(k)
                return
        if self._settled:  # a long window's octave error is heard only if another tracker agrees with it
            values = self._values
            if not _octave_off(v, values[self._heard]) or any(_agree(v, u) for j, u in enumerate(values) if j != k):
                self._hear(k)
        elif not self._short_ok:
            self._hear(k)
