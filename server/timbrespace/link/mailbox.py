"""A latest-value mailbox for the patch vector, shared between the two processes.

Patch changes come far faster than audio blocks (a dragged XY pad, a flood of /latent), and
only the newest one matters. The control side overwrites the slot; the audio side reads it at
most once per block. A sequence lock (odd while writing) lets the reader detect a torn copy and
simply try again next block: neither side ever waits.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from timbrespace.link.shm import SharedBlock
from timbrespace.patch.params import N_PARAMS

_SEQ, _ARRIVAL = 0, 1
_DATA = 2
SIZE = _DATA + N_PARAMS


class PatchMailbox:
    """One patch vector slot with a sequence counter."""

    def __init__(self, block: SharedBlock | None = None) -> None:
        self._block = block if block is not None else SharedBlock(SIZE * 8, shared=False)
        self._a: npt.NDArray[np.float64] = np.ndarray((SIZE,), dtype=np.float64, buffer=self._block.buf)
        if self._block.owner:
            self._a[:] = 0.0
        self._seen = 0.0

    @classmethod
    def create(cls) -> PatchMailbox:
        """A new shared slot (control side)."""
        return cls(SharedBlock(SIZE * 8))

    @classmethod
    def attach(cls, name: str) -> PatchMailbox:
        """Attach to a slot made by the other process (audio side)."""
        return cls(SharedBlock(SIZE * 8, name=name))

    @property
    def name(self) -> str:
        """Shared memory name to pass to the audio process."""
        return self._block.name

    def put(self, values: npt.NDArray[np.float64], arrival: float) -> None:
        """Publish a new patch (single writer)."""
        a = self._a
        seq = a[_SEQ]
        a[_SEQ] = seq + 1.0  # odd: writing
        a[_ARRIVAL] = arrival
        a[_DATA:] = values
        a[_SEQ] = seq + 2.0

    def take(self) -> tuple[npt.NDArray[np.float64], float] | None:
        """The newest patch and its arrival time if it changed since the last take, else None."""
        a = self._a
        seq = a[_SEQ]
        if seq == self._seen or int(seq) & 1:
            return None
        values = a[_DATA:].copy()
        arrival = float(a[_ARRIVAL])
        if a[_SEQ] != seq:  # overwritten while copying: try again next block
            return None
        self._seen = seq
        return values, arrival

    def close(self) -> None:
        """Release the mapping (and unlink it when this side created it)."""
        if hasattr(self, "_a"):
            del self._a
        self._block.close()
