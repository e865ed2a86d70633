"""Deterministic block-by-block rendering with pyo's ``manual`` backend.

``OfflineRenderer`` boots a pyo server with ``audio="manual"``: nothing runs
until :meth:`OfflineRenderer.process_block`, which computes exactly one block.
There is no clock, so rendering is as fast as the CPU allows and repeatable
(the server's global seed fixes the noise generators).

What we found about pyo 1.1.0 servers in one process:

* A new server can be booted after the previous one is shut down, many times
  over (~5 ms a cycle); pyo objects that outlive their server are harmless.
* A numpy view of a pyo table's memory that outlives the server crashes the
  process (segfault) when it is freed, so captures are always copied out.
* Starting a server fades its output buffer in over the first block; the
  renderer processes one silent warm-up block, so block 0 of a render is clean.
* A second server can be booted beside the first, and new pyo objects attach to
  the newest one, so nesting renderers would silently mix graphs up:
  :class:`OfflineRenderer` refuses to nest.  On exit it shuts its server down
  after a garbage collection (objects in reference cycles go first).
* Output: ``process_block`` copies the server's output buffer (what ``.out()``
  objects send, through the server's gain, ~1e-6 off); :meth:`capture` records
  any object sample-exactly with ``TableRec``.
"""

from __future__ import annotations

import ctypes
import gc
import os
from collections.abc import Sequence
from types import TracebackType

os.environ.setdefault("PYO_GUI_WX", "0")  # pyo prints a wxPython warning otherwise

import numpy as np
import numpy.typing as npt
import pyo

from timbrespace.audio.synth import PatchSynth

DEFAULT_SEED = 20240601  # any fixed non-zero seed; 0 would mean "seed from the clock"
Note = tuple[float, float | None, int, int]  # (t_on, t_off or None, MIDI pitch, velocity)


class Capture:
    """Records a PyoObject's streams into a prebuilt table, sample-exact (pyo ``TableRec``)."""

    def __init__(self, obj: pyo.PyoObject, n_samples: int, sample_rate: float) -> None:
        self.n_samples = int(n_samples)
        self.channels = len(obj)
        self._table = pyo.NewTable(length=self.n_samples / sample_rate, chnls=self.channels)
        self._rec = pyo.TableRec(obj, self._table)
        self._rec.play()  # records from the next processed block on

    def array(self) -> npt.NDArray[np.float32]:
        """The recording so far as an ``(n_samples, channels)`` float32 copy."""
        out = np.zeros((self.n_samples, self.channels), dtype=np.float32)
        for c in range(self.channels):
            view = np.asarray(self._table.getBuffer(c))
            n = min(len(view), self.n_samples)
            out[:n, c] = view[:n]
            del view  # never let a view outlive the server
        return out

    def stop(self) -> None:
        """Stop recording."""
        self._rec.stop()


class OfflineRenderer:
    """A pyo server in ``manual`` mode: one block per :meth:`process_block` (context manager)."""

    _active: OfflineRenderer | None = None

    def __init__(
        self, sample_rate: float = 48000.0, block_size: int = 256, channels: int = 2, seed: int = DEFAULT_SEED
    ) -> None:
        self.sample_rate = float(sample_rate)
        self.block_size = int(block_size)
        self.channels = int(channels)
        self.seed = int(seed)
        self.server: pyo.Server | None = None
        self.blocks = 0
        self._out: ctypes.Array[ctypes.c_float] | None = None

    def __enter__(self) -> OfflineRenderer:
        if OfflineRenderer._active is not None:
            raise RuntimeError("an OfflineRenderer is already running; pyo allows one server at a time")
        server = pyo.Server(
            sr=int(self.sample_rate), nchnls=self.channels, buffersize=self.block_size, duplex=0,
            audio="manual",
        )
        server.setVerbosity(1)  # errors only
        server.boot()
        server.setGlobalSeed(self.seed)
        server.start()
        self.server = server
        OfflineRenderer._active = self
        n = self.channels * self.block_size
        self._out = (ctypes.c_float * n).from_address(int(server.getOutputAddr(), 16))
        server.process()  # the start fade-in happens in this block, not in the caller's
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop and shut the server down (idempotent)."""
        if self.server is None:
            return
        self._out = None
        self.server.stop()
        gc.collect()  # pyo objects in reference cycles must go while their server exists
        self.server.shutdown()
        self.server = None
        OfflineRenderer._active = None

    def process_block(self) -> npt.NDArray[np.float32]:
        """Compute one block; returns a copy of what ``.out()`` objects sent, ``(block, channels)``."""
        if self.server is None or self._out is None:
            raise RuntimeError("the renderer is not running (use it as a context manager)")
        self.server.process()
        self.blocks += 1
        block = np.frombuffer(memoryview(self._out), dtype=np.float32)
        return block.reshape(self.block_size, self.channels).copy()

    def capture(self, obj: pyo.PyoObject, seconds: float) -> Capture:
        """Record ``obj`` (all its streams) from the next block on, for ``seconds``."""
        return Capture(obj, round(seconds * self.sample_rate), self.sample_rate)

    @property
    def time(self) -> float:
        """Seconds rendered so far."""
        return self.blocks * self.block_size / self.sample_rate


def render_patch(
    values: npt.ArrayLike,
    notes: Sequence[Note] = ((0.0, 1.0, 60, 100),),
    duration: float = 2.0,
    sample_rate: float = 48000.0,
    block_size: int = 256,
    polyphony: int = 8,
) -> npt.NDArray[np.float32]:
    """Render a patch playing ``notes`` for ``duration`` seconds; ``(n, 2)`` float32.

    Note events are applied at the block boundary nearest their time, as the
    live server applies commands between blocks.  A note-off time of None holds
    the note to the end.
    """
    events: list[tuple[int, int, int, int]] = []  # (block, order, pitch, velocity); off before on
    for t_on, t_off, pitch, velocity in notes:
        events.append((round(t_on * sample_rate / block_size), 1, pitch, velocity))
        if t_off is not None:
            events.append((round(t_off * sample_rate / block_size), 0, pitch, 0))
    events.sort()
    n = round(duration * sample_rate)
    n_blocks = -(-n // block_size)
    with OfflineRenderer(sample_rate, block_size, 2) as r:
        synth = PatchSynth(polyphony=polyphony, sample_rate=sample_rate)
        synth.set_patch(np.asarray(values, dtype=np.float64))
        cap = r.capture(synth.output, n_blocks * block_size / sample_rate)
        k = 0
        for b in range(n_blocks):
            while k < len(events) and events[k][0] <= b:
                _, _, pitch, velocity = events[k]
                if velocity > 0:
                    synth.note_on(pitch, velocity)
                else:
                    synth.note_off(pitch)
                k += 1
            r.process_block()
        audio = cap.array()[:n]
        cap.stop()
        synth.close()
        del synth, cap
    return audio
