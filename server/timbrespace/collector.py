"""The cyclic garbage collector kept off the paths that must not wait.

A full collection walks every object the collector tracks. After startup the control process holds
hundreds of thousands of them (torch, the models, the address tables) and the audio process
thousands (pyo's objects, numpy); walking them all holds the interpreter, so every OSC message
queued behind a full collection waits several audio blocks, and the audio process's per-block
callback can miss its block. What startup built lives as long as the process, so it is frozen
(:func:`freeze_startup`, ``gc.freeze``): later collections walk only what was made since.
:class:`Pauses` measures what collections still cost (``/status/runtime``, the bench).
"""

from __future__ import annotations

import gc
import time
from typing import Any

#: A collection longer than this (seconds) is counted: it held the interpreter for a noticeable
#: share of an audio block.
PAUSE_BUDGET_S = 0.001

_PAUSES: Pauses | None = None


def freeze_startup() -> int:
    """Collect once, then put every object alive now out of the collector's reach; how many.

    :class:`Pauses` counts from here: that collection is startup's, not a pause while serving.
    """
    gc.collect()
    gc.freeze()
    if _PAUSES is not None:
        _PAUSES.reset()
    return gc.get_freeze_count()


class Pauses:
    """Collections of this process, counted and timed (through ``gc.callbacks``) until :meth:`close`;
    one per process is enough (:func:`pauses`)."""

    def __init__(self) -> None:
        self.reset()
        self._start = 0.0
        gc.callbacks.append(self._callback)

    def reset(self) -> None:
        """Count from now."""
        self.collections = [0, 0, 0]
        self.slow = 0
        self.max_s = 0.0
        self.total_s = 0.0

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        now = time.perf_counter()
        if phase == "start":
            self._start = now
            return
        took = now - self._start
        self.collections[info["generation"]] += 1
        self.total_s += took
        self.max_s = max(self.max_s, took)
        self.slow += took > PAUSE_BUDGET_S

    def close(self) -> None:
        """Stop counting."""
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)

    def report(self) -> tuple[Any, ...]:
        """``/status/runtime.reply``'s key value pairs."""
        g0, g1, g2 = self.collections
        return ("frozen", gc.get_freeze_count(), "collections", g0 + g1 + g2, "full_collections", g2,
                "gc_ms", self.total_s * 1000.0, "gc_max_ms", self.max_s * 1000.0, "slow_collections", self.slow)


def pauses() -> Pauses:
    """This process's :class:`Pauses`, counting from the first call."""
    global _PAUSES
    if _PAUSES is None:
        _PAUSES = Pauses()
    return _PAUSES
