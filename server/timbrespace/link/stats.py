"""Counters the audio side writes each block and the control side reads, without locks.

A flat float64 array, in shared memory when the synth runs in its own process. Single writer
(the audio callback), many readers; a reader may see a counter one block stale, never torn (an
aligned 8-byte store is atomic on the platforms we run on).
"""

from __future__ import annotations

import time

import numpy as np
import numpy.typing as npt

from timbrespace.link.shm import SharedBlock

BLOCKS, LATE, VOICES, SAMPLE_RATE, BLOCK_SIZE, LAT_COUNT, MAX_BLOCK_MS, DROPPED, BLOCK_T, LEVEL, TAKEN = range(11)
# TAKEN: commands the audio side has taken from the command socket (the control side's outbox
# counts what each client still has waiting in it from this).
#: The output meter (``LEVEL``, linear peak) falls by this many dB a second once the peaks stop.
LEVEL_FALL_DB_S = 40.0
LAT_RING = 4096
_HEAD = 16
#: The audio process counts as stalled once it has published no block for this many block periods.
STALL_BLOCKS = 20
SIZE = _HEAD + LAT_RING
PERCENTILE_EVERY = 0.1


class AudioStats:
    """A view of the counters; owns its shared memory when ``create`` made it."""

    def __init__(self, block: SharedBlock | None = None) -> None:
        self._block = block if block is not None else SharedBlock(SIZE * 8, shared=False)
        buf = self._block.buf
        self.array: npt.NDArray[np.float64] = np.ndarray((SIZE,), dtype=np.float64, buffer=buf)
        #: The same memory as Python floats: one field is ~20x cheaper to read than through numpy.
        self.values = memoryview(buf).cast("d")
        if self._block.owner:
            self.array[:] = 0.0
        self._pct = (0.0, 0.0)
        self._pct_count = -1.0
        self._pct_time = -1e9

    @classmethod
    def create(cls) -> AudioStats:
        """New shared counters (control side)."""
        return cls(SharedBlock(SIZE * 8))

    @classmethod
    def attach(cls, name: str) -> AudioStats:
        """Attach to counters made by another process (audio side)."""
        return cls(SharedBlock(SIZE * 8, name=name))

    @property
    def name(self) -> str:
        """Shared memory name to pass to the audio process."""
        return self._block.name

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

    def newest_latencies(self, k: int) -> tuple[int, npt.NDArray[np.float64]]:
        """How many latencies were recorded in all, and the newest ``k`` of them (at most LAT_RING),
        oldest first: a reader can join them one by one with what it sent."""
        n = int(self.array[LAT_COUNT])
        k = min(k, n, LAT_RING)
        at = (np.arange(n - k, n) % LAT_RING) + _HEAD
        return n, np.array(self.array[at])

    def reset_latencies(self) -> None:
        """Forget recorded latencies (bench phases)."""
        self.array[LAT_COUNT] = 0
        self._pct, self._pct_count, self._pct_time = (0.0, 0.0), -1.0, -1e9

    def percentiles(self, count: float | None = None) -> tuple[float, float]:
        """p50 and p99 latency in ms; recomputed at most every PERCENTILE_EVERY seconds.

        Percentiles of 4,096 values cost ~150 us, far more than the rest of a /status reply,
        and a client polling /status thousands of times a second must not pay that each time.
        """
        if count is None:
            count = float(self.array[LAT_COUNT])
        if count != self._pct_count:
            now = time.monotonic()
            if now - self._pct_time >= PERCENTILE_EVERY:
                lat = self.latencies() * 1000.0
                p50, p99 = np.percentile(lat, [50, 99]) if lat.size else (0.0, 0.0)
                self._pct = (float(p50), float(p99))
                self._pct_count, self._pct_time = count, now
        return self._pct

    def stall_s(self, now: float) -> float:
        """Seconds since the audio process last started a block, once past STALL_BLOCKS periods; else 0.

        ``now`` is on the monotonic clock, which both processes share.
        """
        v = self.values
        t, sr = v[BLOCK_T], v[SAMPLE_RATE]
        if t <= 0.0 or sr <= 0.0:
            return 0.0  # no block yet (starting)
        gap = now - t
        return gap if gap > STALL_BLOCKS * v[BLOCK_SIZE] / sr else 0.0

    def snapshot(self) -> dict[str, float]:
        """Counters and latency percentiles in milliseconds."""
        h = self.array[:_HEAD].tolist()  # one conversion to Python floats, not one per field
        p50, p99 = self.percentiles(h[LAT_COUNT])
        return {
            "blocks": h[BLOCKS],
            "late_blocks": h[LATE],
            "voices": h[VOICES],
            "sample_rate": h[SAMPLE_RATE],
            "block_size": h[BLOCK_SIZE],
            "max_block_ms": h[MAX_BLOCK_MS],
            "dropped_commands": h[DROPPED],
            "latency_p50_ms": p50,
            "latency_p99_ms": p99,
            "latency_count": h[LAT_COUNT],
        }

    def close(self) -> None:
        """Release the mapping (and unlink it when this side created it); idempotent."""
        if hasattr(self, "array"):
            del self.array
            self.values.release()  # shared memory refuses to close while a view is exported
        self._block.close()
