"""When the heard engine's ticks run in the live server (its model calls run on the inference worker).

The offline renderer runs the same ticks block by block instead.
"""

from __future__ import annotations

import asyncio
import logging

from timbrespace.app import App
from timbrespace.layer import Layer

log = logging.getLogger(__name__)


class EngineTimers:
    """Event-loop timers for the engines of one :class:`App`: each layer's heard engine's
    :meth:`~Engine.tick` runs every ``tick_period`` while it has one."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._app: App | None = None
        self._tick: asyncio.TimerHandle | None = None

    def attach(self, app: App) -> None:
        """Serve ``app``'s layers from now on (before their first /engine switch)."""
        self._app = app
        app.on_select = self.selected
        for layer in app.layers:
            self.selected(layer)

    def selected(self, layer: Layer) -> None:
        """``layer``'s engine heard changed: ticks start when it has some and none run yet."""
        period = layer.engine.tick_period
        if period is not None and self._tick is None:
            self._run_ticks(self._loop.time())

    def _run_ticks(self, due: float) -> None:
        # Ticks keep their own grid (due + k*period), so the frame rate does not drift with load.
        # One grid for every layer: their heard engines tick together, so the inference worker
        # decodes all their frames in one batch.
        self._tick = None
        if self._app is None:
            return
        ticking = [layer.engine for layer in self._app.layers if layer.engine.tick_period is not None]
        if not ticking:
            return
        now = self._loop.time()
        for e in ticking:
            try:
                e.tick(now)
            except Exception:  # a decode bug must not stop the server; the next tick tries again
                log.exception("%s engine tick failed", e.name)
        period = min(e.tick_period for e in ticking if e.tick_period is not None)
        due = max(due + period, now)
        self._tick = self._loop.call_at(due, self._run_ticks, due)

    def close(self) -> None:
        """No more ticks."""
        if self._tick is not None:
            self._tick.cancel()
            self._tick = None
