"""Named shared memory between the control and audio processes, owned by the side that made it.

The control side creates each block (and unlinks it on close; should it die without closing,
Python's resource tracker unlinks it); the audio side attaches by name.  Views into a block
must be released before :meth:`SharedBlock.close`.
"""

from __future__ import annotations

from multiprocessing import shared_memory
from typing import Any


class SharedBlock:
    """``size`` bytes of shared memory (a private bytearray when not shared, for tests and renders)."""

    def __init__(self, size: int, *, name: str | None = None, shared: bool = True) -> None:
        self._shm: shared_memory.SharedMemory | None = None
        self.owner = name is None
        if name is not None:
            self._shm = shared_memory.SharedMemory(name=name)
        elif shared:
            self._shm = shared_memory.SharedMemory(create=True, size=size)
        self.buf: Any = self._shm.buf if self._shm is not None else bytearray(size)

    @property
    def name(self) -> str:
        """The name the other process attaches with."""
        if self._shm is None:
            raise RuntimeError("a private block has no name")
        return self._shm.name

    def close(self) -> None:
        """Unmap (and unlink when this side created it); idempotent."""
        if self._shm is None:
            return
        self.buf = None
        self._shm.close()
        if self.owner:
            self._shm.unlink()
        self._shm = None
