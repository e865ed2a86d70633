"""The live input's latency, measured by the audio process as it plays: onset to the voice at the note's pitch.

What ``bench_input.latency`` measures on a render, counted live (``/input/status``), in samples of
the audio process's own clock (its blocks), so neither the machine's load nor the backend's clock
changes it:

* the onset is the block whose start first finds the level above the gate (the level at the end
  of the block before), refined to the first sample of that block before over the gate's level
  (the caller finds it in the samples it already shares, once per onset);
* the voice is at the note's pitch from the block whose start chose a pitch (the trackers' heard
  f0, which the oscillator takes within the 1 ms glide, or at once for a new note) that every
  later block kept within 25 cents of the note's pitch, while the voice was open; or from the
  sample in the block before it where an armed onset estimate within 25 cents of the note's
  pitch landed, which the voice switched to there (``audio/input_pitch.py``);
* the note's pitch is not known to the audio side; it is the mean (in octaves) of the pitches
  heard over the last :data:`REFERENCE_WINDOWS` long windows of the :data:`HORIZON_WINDOWS`
  after the onset, when all of them are within 25 cents of it (a note that glides or wavers
  wider than that, or ends sooner, is not counted: it has no one pitch to reach).

A latency is therefore known a few windows after its onset, at block resolution at its end (the
voice reaches a pitch chosen at a block's start) but where an armed estimate landed. The work is
a list append per block while a note is being measured and a dozen comparisons once per note: no
allocation beyond that, no wait.
"""

from __future__ import annotations

import math
from collections.abc import Callable

#: Within this (octaves) of the note's pitch the voice is at it: the issue's 25 cents.
AT_PITCH_OCTAVES = 25.0 / 1200.0
#: A note is measured over this many long tracker windows after its onset.
HORIZON_WINDOWS = 4
#: The note's pitch is the mean (in octaves) of the pitches chosen over this many last windows of
#: the horizon: a tracker's estimates of a steady note scatter from window to window (a sawtooth's
#: by up to 30 cents near 440 Hz), so one window's median can sit at one side of the scatter and
#: put estimates from the other side, as near the note, over 25 cents from it.
REFERENCE_WINDOWS = 2


class OnsetLatency:
    """Onset-to-pitch latencies, one per note that holds its pitch, handed to ``record`` (in samples)."""

    def __init__(self, block_size: int, window: int, record: Callable[[float], None]) -> None:
        self.block_size = block_size
        #: Blocks at the end of the horizon whose pitches must agree (the note holds its pitch).
        self.steady = max(1, REFERENCE_WINDOWS * window // block_size)
        #: Blocks from the onset's block until the latency is worked out.
        self.horizon = max(self.steady + 2, math.ceil(HORIZON_WINDOWS * window / block_size))
        self.record = record
        self._heard: list[float] = []  # the pitch chosen at each block since the onset's (0: voice closed)
        #: An estimate heard before each block's start, from how many samples before it (0: none).
        self._early: list[tuple[float, int]] = []
        self._offset = 0  # the onset's sample in the block before the onset's block
        self._measuring = False
        self._loud = False

    def reset(self) -> None:
        """Forget the note being measured (the input was turned off)."""
        self._heard.clear()
        self._early.clear()
        self._measuring = self._loud = False

    def block(self, loud: bool, f0: float, open_: bool, early: float = 0.0, since: int = 0) -> bool:
        """At a block's start: ``loud`` the level above the gate, ``f0`` the pitch chosen, ``open_``
        whether the voice sounds; ``early`` a pitch the voice switched to ``since`` samples before
        the block's start, where its estimate landed (0: none). True when this block is an onset
        (the caller then gives :meth:`onset_at`)."""
        onset = loud and not self._loud
        self._loud = loud
        if not loud:
            if self._measuring:  # the note ended before its pitch could be told: not counted
                self._heard.clear()
                self._early.clear()
                self._measuring = False
            return False
        if onset:
            self._heard.clear()
            self._early.clear()
            self._offset = 0
            self._measuring = True
        if self._measuring:
            self._heard.append(f0 if open_ else 0.0)
            self._early.append((early, since) if open_ else (0.0, 0))
            if len(self._heard) >= self.horizon:
                self._finish()
        return onset

    def onset_at(self, offset: int) -> None:
        """Where in the block before the onset's block the onset fell (its first sample over the gate)."""
        self._offset = min(max(offset, 0), self.block_size - 1)

    def _finish(self) -> None:
        heard = self._heard
        self._measuring = False
        tail = heard[-self.steady :]
        note = 2.0 ** (sum(math.log2(f) for f in tail) / len(tail)) if min(tail) > 0.0 else 0.0
        if note <= 0.0 or not all(_near(f, note) for f in tail):
            heard.clear()
            self._early.clear()
            return  # no one pitch held: nothing to reach
        first = len(heard)
        while first > 0 and _near(heard[first - 1], note):
            first -= 1
        early, since = self._early[first] if first < len(heard) else (0.0, 0)
        if not _near(early, note):
            since = 0
        heard.clear()
        self._early.clear()
        # heard[j] sounds from block (onset's block + j) (an early one from since samples before);
        # the onset fell in the block before the onset's block.
        self.record(float(max(0, (first + 1) * self.block_size - self._offset - since)))


def _near(f: float, note: float) -> bool:
    return f > 0.0 and abs(math.log2(f / note)) < AT_PITCH_OCTAVES
