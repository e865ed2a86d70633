"""The live input's shared state: its settings one way, what the audio side tracks the other.

The audio process plays an input (a WAV file for now), tracks its pitch and level, and sounds a
harmonic-plus-noise voice that follows them (``audio/live_input.py``); the control side decodes
the voice's timbre at the tracked pitch (``input_follow.py``). Three things cross:

* settings (on, gain, transpose, dry level, gate), control -> audio: one seqlock slot like the
  patch mailbox; the audio side takes the newest at a block's start, a torn copy next block;
* tracking (f0, level, voiced), audio -> control: written once per block by the one writer,
  read by the control side at its ticks; a reader may see a value one block old, never torn
  (aligned 8-byte stores);
* the voice's frames (wavetable + noise gains), control -> audio: one
  :class:`~timbrespace.link.frames.FrameSlots` slot, as for the timbre engine's notes;
* the input's samples (after its gain), audio -> control: a ring the audio side appends each
  block to and the control side reads its last half second from, for the timbre encoder
  (``/input/alpha``); the ring holds more than twice that, so a read is never overtaken;
* the latencies the audio side measured (each onset to the voice at the note's pitch, in samples
  of its own clock; ``audio/input_latency.py``), audio -> control: a ring of the newest
  :data:`LAT_RING` and their count, for ``/input/status``.

Neither side ever waits on the other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from timbrespace.link.shm import SharedBlock

# settings (control -> audio)
_SEQ, ON, GAIN_DB, TRANSPOSE, DRY, GATE_DB = range(6)
_SETTINGS = 8
# tracking (audio -> control), after the settings
F0, LEVEL, VOICED, BLOCKS, POSITION, WRITTEN, LAT_COUNT = range(_SETTINGS, _SETTINGS + 7)
_HEAD = _SETTINGS + 8
#: Latencies the ring keeps: /input/status's percentiles are over the newest this many onsets.
LAT_RING = 64
SIZE = _HEAD + LAT_RING
#: Samples of the input the ring keeps (1.4 s at 48 kHz).
RING = 1 << 16
_BYTES = SIZE * 8 + RING * 4

#: The highest f0 the tracker reports (Hz): a whistle's top.
MAX_F0 = 2000.0


def min_f0(window: int, sample_rate: float) -> float:
    """The lowest f0 a ``window``-sample Yin finds: two of its periods must fit in the window."""
    return 2.0 * sample_rate / window * 1.01


def window_for(window_ms: float, sample_rate: float) -> int:
    """The tracker's window in samples at ``sample_rate``: the power of two nearest ``window_ms``."""
    return int(2 ** round(math.log2(window_ms / 1000.0 * sample_rate)))


def even_window(window_ms: float, sample_rate: float) -> int:
    """An onset tracker's window in samples at ``sample_rate``: the even number nearest ``window_ms``
    (pyo's Yin takes any even size; an odd one is made even)."""
    return max(2, 2 * round(window_ms / 1000.0 * sample_rate / 2.0))


def band_widths(centres_hz: npt.ArrayLike, sample_rate: float) -> npt.NDArray[np.float64]:
    """Each noise band's width (Hz): half the way to its neighbours in log frequency (audio.additive.NoiseBank).

    A band at gain g carries the power g**2 * width / (sample_rate / 2) (unit white noise at gain 1).
    """
    c = np.asarray(centres_hz, dtype=np.float64)
    edges = np.concatenate([[c[0] / 2], np.sqrt(c[:-1] * c[1:]), [min(c[-1] * 1.5, sample_rate / 2)]])
    return np.asarray(np.diff(edges))


@dataclass(frozen=True)
class InputSettings:
    """What OSC sets (``/input ...``): plain numbers the audio side applies at a block's start."""

    on: bool = False
    gain_db: float = 0.0
    transpose: float = 0.0
    dry: float = 0.0
    gate_db: float = -50.0


@dataclass(frozen=True)
class InputPlan:
    """What the audio process builds for the input: plain data, it crosses the process boundary.

    ``samples`` is the whole input of a file, already at the server's rate (read and checked on the
    control side before the audio process starts, so the audio side never touches a file); None:
    the audio device's first input channel (JACK's or PortAudio's capture).
    """

    samples: npt.NDArray[np.float32] | None
    sample_rate: int  # the samples' rate (the configured one; a JACK server at another rate resamples them)
    loop: bool
    noise_centres_hz: tuple[float, ...]
    table_size: int
    window_ms: float = 21.3  # the pitch tracker's window (config input.window)
    trackers: int = 4  # Yins staggered across the window (config input.trackers)
    onset: str = "sound"  # "pitch": silent at an onset until its pitch is known (config input.onset)
    onset_window_ms: float = 10.7  # the short trackers' window at onsets, 0: none (config input.onset_window)
    layer: int = 0  # the layer whose place in the mix the voice takes (config input.layer)
    #: The low notes' onset trackers' window, 0: none (config input.low_onset_window).
    low_onset_window_ms: float = 16.0


@dataclass(frozen=True)
class Tracked:
    """What the audio side tracked at its last block."""

    f0: float  # Hz (the tracker's last estimate; meaningful while voiced)
    level: float  # mean absolute amplitude of the input after its gain
    voiced: bool  # above the gate, with a pitch in the tracker's range
    position: float  # seconds of the input played


class InputShared:
    """The settings slot and the tracking fields, in one block of shared memory."""

    def __init__(self, block: SharedBlock | None = None) -> None:
        self._block = block if block is not None else SharedBlock(_BYTES, shared=False)
        self._a: npt.NDArray[np.float64] = np.ndarray((SIZE,), dtype=np.float64, buffer=self._block.buf)
        self._ring: npt.NDArray[np.float32] = np.ndarray((RING,), dtype=np.float32, buffer=self._block.buf,
                                                         offset=SIZE * 8)
        if self._block.owner:
            self._a[:] = 0.0
            self._ring[:] = 0.0
            self._a[GATE_DB] = InputSettings().gate_db
        self._seen = 0.0

    @classmethod
    def create(cls) -> InputShared:
        """A new shared block (control side)."""
        return cls(SharedBlock(_BYTES))

    @classmethod
    def attach(cls, name: str) -> InputShared:
        """Attach to the block made by the other process (audio side)."""
        return cls(SharedBlock(_BYTES, name=name))

    @property
    def name(self) -> str:
        """Shared memory name to pass to the audio process."""
        return self._block.name

    # -- settings ------------------------------------------------------------------------------
    def put(self, s: InputSettings) -> None:
        """Publish new settings (single writer: the control side)."""
        a = self._a
        seq = a[_SEQ]
        a[_SEQ] = seq + 1.0  # odd: writing
        a[ON], a[GAIN_DB], a[TRANSPOSE], a[DRY], a[GATE_DB] = float(s.on), s.gain_db, s.transpose, s.dry, s.gate_db
        a[_SEQ] = seq + 2.0

    def take(self) -> InputSettings | None:
        """The newest settings if they changed since the last take (audio side), else None."""
        a = self._a
        seq = a[_SEQ]
        if seq == self._seen or int(seq) & 1:
            return None
        s = InputSettings(bool(a[ON]), float(a[GAIN_DB]), float(a[TRANSPOSE]), float(a[DRY]), float(a[GATE_DB]))
        if a[_SEQ] != seq:
            return None  # overwritten while copying: next block
        self._seen = seq
        return s

    # -- tracking ------------------------------------------------------------------------------
    def track(self, f0: float, level: float, voiced: bool, position: float) -> None:
        """Publish this block's tracking (single writer: the audio side)."""
        a = self._a
        a[F0], a[LEVEL], a[VOICED], a[POSITION] = f0, level, float(voiced), position
        a[BLOCKS] += 1.0

    def tracked(self) -> Tracked:
        """The newest tracking (control side)."""
        a = self._a
        return Tracked(float(a[F0]), float(a[LEVEL]), bool(a[VOICED]), float(a[POSITION]))

    # -- onset latencies -------------------------------------------------------------------------
    def record_latency(self, samples: float) -> None:
        """Add one onset's latency, in samples (single writer: the audio side)."""
        a = self._a
        n = int(a[LAT_COUNT])
        a[_HEAD + n % LAT_RING] = samples
        a[LAT_COUNT] = float(n + 1)

    def latencies(self) -> tuple[int, npt.NDArray[np.float64]]:
        """How many latencies were recorded in all, and the newest (up to LAT_RING, in no order; control side)."""
        n = int(self._a[LAT_COUNT])
        return n, np.array(self._a[_HEAD : _HEAD + min(n, LAT_RING)])

    # -- the input's samples ---------------------------------------------------------------------
    def append(self, samples: npt.NDArray[np.float32]) -> None:
        """Add the input's newest samples to the ring (single writer: the audio side)."""
        n = min(len(samples), RING)
        written = int(self._a[WRITTEN])
        i = written % RING
        first = min(n, RING - i)
        self._ring[i : i + first] = samples[len(samples) - n : len(samples) - n + first]
        self._ring[: n - first] = samples[len(samples) - n + first :]
        self._a[WRITTEN] = float(written + n)

    def latest(self, n: int) -> npt.NDArray[np.float32]:
        """The input's last ``n`` samples (zeros before the first), oldest first (control side)."""
        n = min(n, RING // 2)
        written = int(self._a[WRITTEN])
        idx = np.arange(written - n, written)
        out = self._ring[idx % RING].copy()
        out[idx < 0] = 0.0
        return out

    def close(self) -> None:
        """Release the mapping (and unlink it when this side created it); idempotent."""
        if hasattr(self, "_a"):
            del self._a, self._ring
        self._block.close()
