"""Counters the audio side writes each block and the control side reads, without locks.

A flat float64 array, in shared memory when the synth runs in its own process. Single writer
(the audio callback), many readers; a reader may see a counter one block stale, never torn (an
aligned 8-byte store is atomic on the platforms we run on).
"""

from __future__ import annotations

from multiprocessing import shared_memory
from typing import Any

import numpy as np
import numpy.typing as npt

BLOCKS, LATE, VOICES, SAMPLE_RATE, BLOCK_SIZE, LAT_COUNT, MAX_BLOCK_MS, DROPPED = range(8)
LAT_RING = 4096
_HEAD = 8
SIZE = _HEAD + LAT_RING


class AudioStats:
    """A view of the counters; owns its shared memory when ``create`` made it."""

    def __init__(self, shm: shared_memory.SharedMemory | None = None, owner: bool = False) -> None:
        self._shm = shm
        self._owner = owner
        buf: Any = shm.buf if shm is not None else bytearray(SIZE * 8)
        self.array: npt.NDArray[np.float64] = np.ndarray((SIZE,), dtype=np.float64, buffer=buf)
        if owner or shm is None:
            self.array[:] = 0.0

    @classmethod
    def create(cls) -> AudioStats:
        """New shared counters (control side)."""
        return cls(shared_memory.SharedMemory(create=True, size=SIZE * 8), owner=True)

    @classmethod
    def attach(cls, name: str) -> AudioStats:
        """Attach to counters made by another process (audio side)."""
        return cls(shared_memory.SharedMemory(name=name), owner=False)

    @property
    def name(self) -> str:
        """Shared memory name to pass to the audio process."""
        assert self._shm is not None
        return self._shm.name

    def record_latency(self, seconds: float) -> None:
        """Add one arrival-to-block latency (audio side)."""
        a = self.array
        n = int(a[LAT_COUNT])
        a[_HEAD + n % LAT_RING] = seconds
        a[LAT_COUNT] = n + 1

    def latencies(self) -> npt.NDArray[np.float64]:
        """The most recent latencies (up to LAT_RING), oldest order not guaranteed."""
        n = min(int(self.array[LAT_COUNT]), LAT_RING)
        return np.array(self.array[_HEAD : _HEAD + n])

    def reset_latencies(self) -> None:
        """Forget recorded latencies (bench phases)."""
        self.array[LAT_COUNT] = 0

    def snapshot(self) -> dict[str, float]:
        """Counters and latency percentiles in milliseconds."""
        a = self.array
        lat = self.latencies() * 1000.0
        return {
            "blocks": float(a[BLOCKS]),
            "late_blocks": float(a[LATE]),
            "voices": float(a[VOICES]),
            "sample_rate": float(a[SAMPLE_RATE]),
            "block_size": float(a[BLOCK_SIZE]),
            "max_block_ms": float(a[MAX_BLOCK_MS]),
            "dropped_commands": float(a[DROPPED]),
            "latency_p50_ms": float(np.percentile(lat, 50)) if lat.size else 0.0,
            "latency_p99_ms": float(np.percentile(lat, 99)) if lat.size else 0.0,
            "latency_count": float(a[LAT_COUNT]),
        }

    def close(self) -> None:
        """Release the mapping (and unlink it when this side created it)."""
        if self._shm is None:
            return
        del self.array
        self._shm.close()
        if self._owner:
            self._shm.unlink()
        self._shm = None
