"""Per-voice frames of the timbre engine, shared between the two processes.

The control side decodes a frame (harmonic wavetable + noise band gains) for every sounding
note at each control tick and writes it to the note's slot; the audio side polls the slots at
each block and hands new frames to its voices.  Like the patch mailbox, each slot has a
sequence lock (odd while writing): a reader that sees a torn copy skips it and takes the
slot at the next block, so neither side ever waits.  Only the newest frame of a slot matters.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from timbrespace.link.shm import SharedBlock

_SEQ, _F0, _ARRIVAL, _GEN = range(4)
_HEAD = 4  # float64 fields per slot; _GEN is only used in row 0: frames published so far


class FrameSlots:
    """``slots`` frames of a ``table_size`` wavetable and ``n_noise`` band gains each."""

    def __init__(self, slots: int, table_size: int, n_noise: int, block: SharedBlock | None = None) -> None:
        self.slots, self.table_size, self.n_noise = int(slots), int(table_size), int(n_noise)
        size = self.nbytes(slots, table_size, n_noise)
        self._block = block if block is not None else SharedBlock(size, shared=False)
        buf = self._block.buf
        self._head: npt.NDArray[np.float64] = np.ndarray((self.slots, _HEAD), np.float64, buf)
        width = self.table_size + self.n_noise
        self._data: npt.NDArray[np.float32] = np.ndarray(
            (self.slots, width), np.float32, buf, offset=self.slots * _HEAD * 8
        )
        if self._block.owner:
            self._head[:] = 0.0
            self._data[:] = 0.0
        self._seen = np.zeros(self.slots)
        self._gen_seen = 0.0

    @staticmethod
    def nbytes(slots: int, table_size: int, n_noise: int) -> int:
        """Bytes of shared memory for this layout."""
        return slots * (_HEAD * 8 + (table_size + n_noise) * 4)

    @classmethod
    def create(cls, slots: int, table_size: int, n_noise: int) -> FrameSlots:
        """New shared slots (control side)."""
        return cls(slots, table_size, n_noise, SharedBlock(cls.nbytes(slots, table_size, n_noise)))

    @classmethod
    def attach(cls, name: str, slots: int, table_size: int, n_noise: int) -> FrameSlots:
        """Attach to slots made by the other process (audio side)."""
        return cls(slots, table_size, n_noise, SharedBlock(cls.nbytes(slots, table_size, n_noise), name=name))

    @property
    def name(self) -> str:
        """Shared memory name to pass to the audio process."""
        return self._block.name

    def put(self, slot: int, table: npt.ArrayLike, noise: npt.ArrayLike, f0: float, arrival: float = 0.0) -> None:
        """Publish a frame for ``slot`` (single writer: the control side)."""
        h = self._head[slot]
        seq = h[_SEQ]
        h[_SEQ] = seq + 1.0  # odd: writing
        h[_F0], h[_ARRIVAL] = f0, arrival
        row = self._data[slot]
        row[: self.table_size] = table
        row[self.table_size :] = noise
        h[_SEQ] = seq + 2.0
        self._head[0, _GEN] += 1.0

    def changed(self) -> list[int]:
        """Slots with a complete frame not taken yet.

        The audio side asks at every block, mostly when nothing was published: one comparison
        with the publication counter answers that; the slots are scanned only when it moved.
        """
        gen = float(self._head[0, _GEN])
        if gen == self._gen_seen:
            return []
        seq = self._head[:, _SEQ]
        pending = seq != self._seen
        if not pending.any():
            self._gen_seen = gen
            return []
        return [int(i) for i in np.flatnonzero(pending & (seq % 2.0 == 0.0))]

    def take(
        self, slot: int, table: npt.NDArray[np.float32], noise: npt.NDArray[np.float32]
    ) -> tuple[float, float] | None:
        """Copy ``slot``'s newest frame into ``table`` and ``noise``; ``(f0, arrival)`` or None.

        None when nothing new was written, or when the frame was being rewritten while it was
        copied (then the next call gets it).
        """
        h = self._head[slot]
        seq = h[_SEQ]
        if seq == self._seen[slot] or int(seq) & 1:
            return None
        row = self._data[slot]
        table[:] = row[: self.table_size]
        noise[:] = row[self.table_size :]
        f0, arrival = float(h[_F0]), float(h[_ARRIVAL])
        if h[_SEQ] != seq:
            return None
        self._seen[slot] = seq
        return f0, arrival

    def close(self) -> None:
        """Release the mapping (and unlink it when this side created it); idempotent."""
        if hasattr(self, "_head"):
            del self._head, self._data
        self._block.close()
