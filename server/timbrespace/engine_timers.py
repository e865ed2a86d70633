"""When engines' own work runs in the live server: a flush they defer, and the heard engine's ticks.

The one place that decides it, so that another way to run engine work (a worker thread) replaces
this class and nothing else. The offline renderer runs the same work block by block instead.
"""

from __future__ import annotations

import asyncio
import logging

from timbrespace.app import App
from timbrespace.engines.base import Engine

log = logging.getLogger(__name__)


class EngineTimers:
    """Event-loop timers for the engines of one :class:`App`.

    :meth:`defer` is what an engine is given to ask for a flush later (see ``PatchEngine``);
    the heard engine's :meth:`~Engine.tick` runs every ``tick_period`` while it has one.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._app: App | None = None
        self._flush_armed = False
        self._tick: asyncio.TimerHandle | None = None

    def attach(self, app: App) -> None:
        """Serve ``app``'s engines from now on (before its first /engine switch)."""
        self._app = app
        app.on_select = self.selected
        self.selected(app.engine)

    def defer(self, delay: float) -> None:
        """Flush the engines after ``delay`` seconds; one timer at a time, however many ask."""
        if not self._flush_armed:
            self._flush_armed = True
            self._loop.call_later(max(delay, 0.0), self._flush)

    def _flush(self) -> None:
        self._flush_armed = False
        if self._app is not None:
            for engine in self._app.engines.values():
                engine.flush()

    def selected(self, engine: Engine) -> None:
        """``engine`` is heard now: its ticks start when it has some and none run yet."""
        if engine.tick_period is not None and self._tick is None:
            self._run_ticks(self._loop.time())

    def _run_ticks(self, due: float) -> None:
        # Ticks keep their own grid (due + k*period), so the frame rate does not drift with load.
        self._tick = None
        if self._app is None:
            return
        e = self._app.engine
        if e.tick_period is None:
            return
        now = self._loop.time()
        try:
            e.tick(now)
        except Exception:  # a decode bug must not stop the server; the next tick tries again
            log.exception("%s engine tick failed", e.name)
        due = max(due + e.tick_period, now)
        self._tick = self._loop.call_at(due, self._run_ticks, due)

    def close(self) -> None:
        """No more ticks (a deferred flush is left to run: it only publishes a patch already chosen)."""
        if self._tick is not None:
            self._tick.cancel()
            self._tick = None
