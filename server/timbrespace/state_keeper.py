"""The live server's state kept on disk while it runs, not only at exit.

Every ``state.save_interval`` seconds the engines' snapshots are encoded and compared with what
was last written; a change is written atomically on a worker thread, so the event loop never
waits on the disk. At most one write is in flight; changes made meanwhile go out at
the next check. A crash or ``kill -9`` therefore loses at most the last interval, and never
leaves half a file (the previous one stays until the new one is complete).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from timbrespace.fsutil import atomic_write_text
from timbrespace.ratelog import RateLimitedLog
from timbrespace.state import encode_state

log = logging.getLogger(__name__)
_log_fail = RateLimitedLog(log, 1, "state save failures")

#: What is saved: each layer's ``{"engines": snapshots by name, "active": the engine heard}``.
Snapshot = list[dict[str, Any]]


class StateKeeper:
    """Writes ``snapshot()`` to ``path`` when it changed, checked every ``interval`` seconds."""

    def __init__(self, loop: asyncio.AbstractEventLoop, path: Path, snapshot: Callable[[], Snapshot],
                 interval: float) -> None:
        self._loop = loop
        self.path = path
        self._snapshot = snapshot
        self.interval = interval
        #: The text the file holds (None: unknown, so the first check writes).
        self._saved: str | None = None
        self._writing: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.writes = 0
        self.failures = 0

    def start(self) -> None:
        """Check on a fixed period from now on."""
        self._timer = self._loop.call_later(self.interval, self._check)

    def _check(self) -> None:
        self._timer = self._loop.call_later(self.interval, self._check)
        if self._writing is not None:
            return  # the next check looks again once this write is done
        try:
            # Encoded here, on the loop, so that it is one consistent state; only the write moves.
            text = encode_state(self._snapshot())
        except ValueError as e:
            self.failures += 1
            _log_fail.warning("could not save the state to %s (the previous file is kept): %s", self.path, e)
            return
        if text == self._saved:
            return
        self._writing = self._loop.run_in_executor(None, atomic_write_text, self.path, text)
        self._writing.add_done_callback(lambda f: self._written(f, text))

    def _written(self, future: asyncio.Future[None], text: str) -> None:
        self._writing = None
        try:
            future.result()
        except OSError as e:
            self.failures += 1
            _log_fail.warning("could not save the state to %s (the previous file is kept; retrying): %s",
                              self.path, e)
            return
        self._saved = text
        self.writes += 1

    async def close(self) -> None:
        """No more checks; a write in flight is finished first (the caller then saves the final state)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._writing is not None:
            # A failure was reported by _written; the final save at exit tries again.
            with contextlib.suppress(OSError):
                await asyncio.shield(self._writing)
