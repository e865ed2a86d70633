"""The live input's pitch: pyo Yins of three window lengths, the one heard chosen at each block.

::

    input ─┬─ N long Yins (window ≈ hop, staggered) ───┐
           ├─ M short Yins (one block apart) ──────────┤
           └─ L low onset Yins (one block apart) ──────┴─ Selector (the tracker heard) ─▶ f0

pyo's Yin analyses non-overlapping windows (it takes winsize + 1 samples per estimate), and two
periods of the lowest pitch must fit in one. The long window (``input.window``) reaches low notes
and holds a steady pitch; N of them, started window/N apart, refresh it N times a window. A new
note's pitch would need about a long window: the onset trackers answer sooner, one window ending
in every block, the short ones (``input.onset_window``) for notes with two periods in 512
samples (from 213 Hz), the low ones (``input.low_onset_window``, 768 samples) from 142 Hz
(under that a window finds nothing, or a dip near its longest lag, which is left out).

An estimate is *fresh* when its window began after the onset (the first sample over the gate of
the block the level crossed it in), or with at most FRESH_LEAD of it before: one with more of the
silence before an attack in it reads low (tens of cents) or an octave off. Since a Yin's hop is
winsize + 1, its windows drift a sample a window against the blocks: where each began is counted
in samples. At a note's onset the voice hears the first fresh onset estimate (or, before any,
one that agrees within 25 cents with the last of its window length), and each later fresh one.
With ``input.onset: pitch`` the voice opens once the note's pitch is known: two fresh estimates
(any trackers') within 25 cents, or an onset estimate within 12.5 cents of one whose window ended
before its own began. The first fresh long window takes over if it is within 12.5 cents of the
onset pitch heard, else the next long one that agrees. From then on, and for notes too low for
the onset windows, the long trackers are heard, each new estimate as it lands, except one about
an octave from the pitch heard (a Yin's typical error), until another tracker's last estimate
agrees with it. A jump of the heard pitch by over 50 cents (a new note's) is not glided (the
voice's phasor keeps its phase).

The voice can only be told a new choice at a block's start, so an estimate landing inside a block
would wait up to a block for it. Until a long window settles the note, for each onset window
length the tracker whose next window is fresh and ends in the coming block is armed at the
block's start: pyo switches the voice to it (``_Armed``: two comparisons and a selector at audio
rate) on the sample its new estimate lands, if that estimate is over the tracker's floor, and the
choice at the next block's start makes the same one.

pyo's Yin (1.1.0) refines its lag with a parabola through the dip's three samples, but with the
vertex's offset negated: an estimate's period is the integer lag *minus* the true sub-sample
offset, up to a whole sample off (51 cents at 1740 Hz, 33 at 990 Hz on pure sines). The offset is
at most half a sample, so the integer lag is the estimate's period rounded, and the true period is
twice it less the estimate's (:func:`unmirror`): applied to each value read here, and once in pyo
to the pitch the voice follows (:func:`unmirrored`, five arithmetic objects). A tracker's floor
is compared with its estimate as pyo gives it, here as in the armed stages, so both choose alike.

The choice is made in Python at each block's start, from each tracker's last value: a few reads
and comparisons, never a wait.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import pyo

from timbrespace.link.input import MAX_F0, even_window, min_f0, window_for

#: Two estimates this close (in octaves) agree: the issue's bound on a heard pitch's error.
AGREE_OCTAVES = 25.0 / 1200.0
#: With input.onset "pitch" the voice opens on a pair: closer, so that the pitch it opens at is
#: within 25 cents of the note's even when both lean the same way.
PAIR_OCTAVES = 12.5 / 1200.0
#: A new long estimate this far (in octaves) from the one heard is a Yin's octave error until
#: another tracker agrees with it.
OCTAVE_ERROR = 1.0 - 0.1
#: With input.onset pitch, once an onset estimate is heard a later fresh one this close (octaves)
#: replaces it: a pair with the attack in one window can read a few tens of cents low.
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
#: Onset estimates this close to the lowest pitch of their window are left out: there its Yin
#: finds a dip near its longest lag for lower notes (a 150 Hz note read as 190 Hz in a 512 window;
#: such readings land up to 1.3 semitones above the lowest pitch).
SHORT_MARGIN = 2.0 ** (2.0 / 12.0)
#: The most trackers of one onset window (their CPU): with small blocks they start a few blocks apart.
MAX_ONSET_TRACKERS = 8
#: Onset estimates kept for input.onset pitch's pairs: more than land over one onset window.
PAIR_MEMORY = 16
#: The armed floor when no onset tracker is armed: no estimate reaches it.
DISARMED = 1.0e9


def _agree(a: float, b: float, octaves: float = AGREE_OCTAVES) -> bool:
    return a > 0.0 and b > 0.0 and abs(math.log2(a / b)) < octaves


def _octave_off(a: float, b: float) -> bool:
    """``a`` is about an octave (or more) from ``b``: a Yin's typical error."""
    return a > 0.0 and b > 0.0 and abs(math.log2(a / b)) > OCTAVE_ERROR


def unmirror(f0: float, sample_rate: float) -> float:
    """pyo's Yin estimate ``f0`` (Hz) with its sub-sample offset's sign put right (0 stays 0).

    pyo's parabolic refinement returns ``lag - d`` for a dip at ``lag + d`` (``|d| <= 0.5``), so
    ``lag = round(period)`` and the true period is ``2 lag - period``.
    """
    if f0 <= 0.0:
        return 0.0
    period = sample_rate / f0
    return sample_rate / (2.0 * round(period) - period)


def unmirrored(f0: Any, sample_rate: float) -> tuple[Any, list[Any]]:
    """:func:`unmirror` in pyo, at audio rate: the corrected pitch and the objects made (a pitch
    of 0, before any estimate, comes out as 1 Hz: under any tracker's range, as 0 is)."""
    floor = pyo.Max(f0, 1.0)
    period = sample_rate / floor
    lag = pyo.Round(period)
    true = lag * 2.0 - period
    out = sample_rate / true
    return out, [floor, period, lag, true, out]


class _Armed:
    """One armed onset tracker (:meth:`InputPitch._arm`): ``out`` is ``below`` until the tracker's
    estimate changes to one over its floor, then the tracker, switched in pyo at audio rate."""

    def __init__(self, below: Any, yins: list[Any], trackers: range) -> None:
        self.trackers = trackers
        self.yin = pyo.Selector(yins, voice=float(trackers[0]))
        self._b_voice = list(self.yin._base_objs)
        self._stale, self._floor = pyo.Sig(0.0), pyo.Sig(DISARMED)
        self._b_stale, self._b_floor = self._stale._base_objs[0], self._floor._base_objs[0]
        new = pyo.Compare(self.yin, self._stale, "!=")
        over = pyo.Compare(self.yin, self._floor, ">=")
        landed = new * over
        self.out = pyo.Selector([below, self.yin], voice=landed)
        self.objects = [self.yin, self._stale, self._floor, new, over, landed, self.out]
        self.k = -1  # the tracker armed (-1: none)
        self.land = 0  # the sample its estimate lands at
        self.stale = 0.0  # its estimate when armed

    def arm(self, k: int, land: int, stale: float, floor: float) -> None:
        if k != self.k:
            for o in self._b_voice:
                o.setVoice(float(k))
        self.k, self.land, self.stale = k, land, stale
        self._b_stale.setValue(stale)
        self._b_floor.setValue(floor)

    def disarm(self) -> None:
        if self.k >= 0:
            self._b_floor.setValue(DISARMED)
            self.k = -1


class InputPitch:
    """The trackers, their staggered starts and the choice of the one heard (:attr:`f0`)."""

    def __init__(self, signal: Any, sample_rate: float, block_size: int, window_ms: float, trackers: int,
                 onset_window_ms: float, agree_first: bool = False, low_onset_window_ms: float = 0.0) -> None:
        self.sample_rate = float(sample_rate)
        self.window = window_for(window_ms, sample_rate)
        self.min_f0 = min_f0(self.window, sample_rate)
        self.block_size = block_size
        self.window_blocks = max(1, self.window // block_size)
        n = max(1, min(trackers, self.window_blocks))
        stagger = self.window_blocks // n  # blocks between two long trackers' starts
        self.short_window = window_for(onset_window_ms, sample_rate) if onset_window_ms > 0.0 else 0
        self.low_window = even_window(low_onset_window_ms, sample_rate) if low_onset_window_ms > 0.0 else 0
        for name, ms, w in (("onset_window", onset_window_ms, self.short_window),
                            ("low_onset_window", low_onset_window_ms, self.low_window)):
            if w >= self.window:
                raise ValueError(f"input.{name} ({ms} ms: {w} samples) must be shorter than input.window "
                                 f"({window_ms} ms: {self.window} samples)")
        self._agree_first = agree_first
        self._pair = PAIR_OCTAVES if agree_first else AGREE_OCTAVES
        self._long = n
        # pyo's Yin fills winsize + 1 samples before each estimate (its hop; the analysis uses the
        # first winsize - 1): its windows drift a sample a window against the blocks, so where a
        # window began is worked out from the samples each tracker has taken, not from blocks.
        self._hops = [self.window + 1] * n
        self._floors = [0.0] * n  # onset trackers: the lowest estimate taken (long ones: unused)
        self.yins = [pyo.Yin(signal, tolerance=YIN_TOLERANCE, minfreq=self.min_f0, maxfreq=MAX_F0,
                             cutoff=YIN_CUTOFF, winsize=self.window) for _ in range(n)]
        #: (block, tracker) in the order they start: the first /input 1 starts them one by one.
        self._starts = [(k * stagger, k) for k in range(n)]
        # Onset trackers: a window ends in every block (one started a block apart per block of its
        # window; at most MAX_ONSET_TRACKERS, further apart), so the first window that begins after
        # an onset lands within a block of the earliest it could.
        self._sets: list[tuple[int, int]] = []  # each onset window length's trackers (first, end)
        for w in (self.short_window, self.low_window):
            if not w:
                continue
            blocks = math.ceil(w / block_size)
            m = min(blocks, MAX_ONSET_TRACKERS)
            apart = math.ceil(blocks / m)
            self._sets.append((len(self.yins), len(self.yins) + m))
            low = min_f0(w, sample_rate)
            for j in range(m):
                self._starts.append((j * apart, len(self.yins)))
                self._hops.append(w + 1)
                self._floors.append(low * SHORT_MARGIN)
                self.yins.append(pyo.Yin(signal, tolerance=YIN_TOLERANCE, minfreq=low, maxfreq=MAX_F0,
                                         cutoff=YIN_CUTOFF, winsize=w))
        self._starts.sort()
        self._began = [0] * len(self.yins)  # the block each tracker started at
        self._next = 0
        self._playing: list[int] = []
        self._blocks = 0  # blocks analysed while on
        self._values = [0.0] * len(self.yins)  # each tracker's last estimate, unmirrored (Hz)
        self._raw = [0.0] * len(self.yins)  # as pyo's Yin gave it: what the armed stages compare
        self._heard = 0
        # pyo's Selector crashes the process with a single input: one tracker is heard directly.
        self.chosen = pyo.Selector(self.yins, voice=0.0) if len(self.yins) > 1 else pyo.Sig(self.yins[0])
        self._b_select = list(self.chosen._base_objs) if len(self.yins) > 1 else []
        self._graph: list[Any] = [self.chosen]
        self.f0 = self.chosen
        #: An armed estimate that landed in the last block (Hz, 0: none) and how many samples before
        #: this block's start it did: the voice had that pitch from there to the block's start.
        self.early, self.since = 0.0, 0
        # A pitch chosen at a block's start is heard up to a block after its estimate landed. For
        # each onset window length, the tracker whose next window is fresh and ends in this block is
        # armed at its start instead: the voice switches to it in pyo on the sample its estimate
        # lands, if that is over the tracker's floor (the choice at the next block's start then
        # makes the same one). One stage per length: a short window's estimate of a low note is
        # below its floor, and the low window's landing in the same block must still be heard.
        self._stages: list[_Armed] = []
        for first, end in self._sets:
            stage = _Armed(self.f0, self.yins, range(first, end))
            self._stages.append(stage)
            self._graph += stage.objects
            self.f0 = stage.out
        # The trackers' outputs stay as pyo gives them (the armed stages compare them with what
        # was read); the pitch the voice follows is put right once, after the choice.
        self.f0, fixed = unmirrored(self.f0, sample_rate)
        self._graph += fixed
        self._quiet = -1  # the last block that ended under the gate
        self._onset = 0  # the onset's first sample over the gate (samples since the trackers began)
        self._settled = False  # a long window that began after the onset has landed
        self._short_ok = False  # an onset estimate was trusted since the onset (fresh, or a pair)
        #: The last onset estimate since the onset of each window length (by hop).
        self._short_last: defaultdict[int, float] = defaultdict(float)
        #: Onset estimates since the onset, (window's last sample, f0): input.onset pitch pairs one with
        #: one whose window ended before its own began.
        self._short_seen: list[tuple[int, float]] = []
        #: Estimates since the onset from windows that began after it (any tracker's): two that agree
        #: within 25 cents give the note's pitch.
        self._fresh_seen: list[float] = []
        #: The heard pitch is the note's: two fresh estimates agreed, or an onset pair did.
        self.known = False
        #: The heard pitch moved by more than JUMP_OCTAVES at this block (a new note).
        self.jumped = False
        self._last = 0.0

    def play(self) -> None:
        """Start the trackers started so far (stopped together, they kept their stagger)."""
        for o in self._graph:
            o.play()
        for k in self._playing:
            self.yins[k].play()

    def stop(self) -> None:
        for stage in self._stages:
            stage.disarm()
        for o in self._graph:
            o.stop()
        for y in self.yins:
            y.stop()

    @property
    def armed(self) -> bool:
        """An onset tracker is armed for this block: its estimate may be switched to within it."""
        return any(stage.k >= 0 for stage in self._stages)

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
            self._short_last.clear()
            self._fresh_seen.clear()
            self._short_seen.clear()
        elif self._quiet == b - 2:  # the first block over the gate: the onset fell in the last one
            self._onset = (b - 1) * self.block_size + onset
        values, raw = self._values, self._raw
        for k in self._playing:
            r = float(self.yins[k].get())
            if r == raw[k]:
                continue
            raw[k] = r
            v = values[k] = unmirror(r, self.sample_rate)
            first = self._window_start(k, b)
            fresh = loud and first >= self._onset - FRESH_LEAD * self._hops[k]
            paired = fresh and (k < self._long or r >= self._floors[k]) and self._fresh(v)
            if k < self._long:
                self._long_update(k, v, fresh)
            elif loud and not self._settled and r >= self._floors[k]:
                if self._agree_first:
                    # Overlapping windows with the attack in them share its bias: the pair is a
                    # window and one that ended before it began (within 12.5 cents), or two that
                    # began after the onset (no bias: within 25 cents, as two long ones).
                    trusted = paired or any(last < first and _agree(v, u, self._pair) for last, u in self._short_seen)
                    self._short_seen.append((first + self._hops[k] - 1, v))
                    del self._short_seen[:-PAIR_MEMORY]
                    later = fresh
                else:
                    # Before any is trusted, one with the onset in its window is, if it agrees with
                    # the last of its own length.
                    trusted = fresh or (not self._short_ok and _agree(v, self._short_last[self._hops[k]]))
                    later = False
                if trusted:
                    self._short_ok = self.known = True
                    self._hear(k)
                elif self._short_ok and later and _agree(v, values[self._heard], CORRECT_OCTAVES):
                    self._hear(k)  # a window after the onset: closer to the note's pitch than a pair's
                self._short_last[self._hops[k]] = v
        self.early, self.since = 0.0, 0
        for stage in self._stages:  # a later stage's landing overrides an earlier one's
            k = stage.k
            if k >= 0 and raw[k] != stage.stale and raw[k] >= self._floors[k]:
                self.early, self.since = values[k], b * self.block_size - stage.land
        self._arm(b, loud)
        f0 = values[self._heard]
        self.jumped = not _agree(f0, self._last, JUMP_OCTAVES)
        self._last = f0
        return f0

    def _arm(self, b: int, loud: bool) -> None:
        """Arm, for each onset window length, the tracker whose next window is fresh and lands
        first in block ``b`` (none once a long window has settled the note, nor with input.onset
        pitch, whose voice opens at a block's start)."""
        arming = loud and not self._settled and not self._agree_first
        for stage in self._stages:
            best, land = -1, (b + 1) * self.block_size
            for k in stage.trackers if arming else ():
                hop = self._hops[k]
                start = self._window_start(k, b) + hop  # the next window's first sample
                if start + hop - 1 < land and start >= self._onset - FRESH_LEAD * hop and k in self._playing:
                    best, land = k, start + hop - 1
            if best < 0:
                stage.disarm()
            else:
                stage.arm(best, land, self._raw[best], self._floors[best])

    def _fresh(self, v: float) -> bool:
        """An estimate from a window that began after the onset; True when it agrees with an earlier
        one (the note's pitch is then known)."""
        paired = any(_agree(v, u) for u in self._fresh_seen)
        self.known = self.known or paired
        if len(self._fresh_seen) < PAIR_MEMORY:
            self._fresh_seen.append(v)
        return paired

    def _long_update(self, k: int, v: float, fresh: bool) -> None:
        # The first fresh long window takes over if it is close to the short pitch heard.
        if fresh and not self._settled and (not self._short_ok or _agree(v, self._values[self._heard], PAIR_OCTAVES)):
            self._settled = True
            self._hear(k)
            return
        if self._settled:  # a long window's octave error is heard only if another tracker agrees with it
            values = self._values
            if not _octave_off(v, values[self._heard]) or any(_agree(v, u) for j, u in enumerate(values) if j != k):
                self._hear(k)
        elif not self._short_ok:
            self._hear(k)
