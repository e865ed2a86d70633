"""When session work runs in the live server: feedback flushes and the sessions' upkeep.

Feedback asks for a flush at a time (its rate grid); members that went silent and UDP
subscriptions that were not renewed are looked at on a fixed period. The offline renderer and
the tests call :meth:`App.housekeeping` themselves instead.
"""

from __future__ import annotations

import asyncio
import logging
import time

from timbrespace.app import App

log = logging.getLogger(__name__)

#: How often silent members are let go and subscriptions expire (their timeouts are seconds long).
HOUSEKEEPING_S = 0.25


class SessionTimers:
    """Event-loop timers for one :class:`App`'s sessions and feedback."""

    def __init__(self, loop: asyncio.AbstractEventLoop, app: App) -> None:
        self._loop = loop
        self._app = app
        self._flush: asyncio.TimerHandle | None = None
        self._upkeep: asyncio.TimerHandle | None = None

    def start(self) -> None:
        """Take the feedback's flush requests and start the upkeep."""
        self._app.feedback.wake = self._wake
        self._upkeep = self._loop.call_later(HOUSEKEEPING_S, self._housekeeping)

    def _wake(self, at: float) -> None:
        # One timer, at the earliest time asked for (a later request never delays it). ``at`` is on
        # time.monotonic's clock, which need not be the loop's.
        when = self._loop.time() + max(0.0, at - time.monotonic())
        if self._flush is not None:
            if self._flush.when() <= when:
                return
            self._flush.cancel()
        self._flush = self._loop.call_at(when, self._flush_due)

    def _flush_due(self) -> None:
        self._flush = None
        try:
            self._app.feedback.flush(time.monotonic())
        except Exception:  # a feedback bug must not stop the server; the next flush tries again
            log.exception("feedback flush failed")

    def _housekeeping(self) -> None:
        try:
            self._app.housekeeping(time.monotonic())
        except Exception:
            log.exception("session housekeeping failed")
        self._upkeep = self._loop.call_later(HOUSEKEEPING_S, self._housekeeping)

    def close(self) -> None:
        """No more flushes or upkeep (the transport is about to stop)."""
        for handle in (self._flush, self._upkeep):
            if handle is not None:
                handle.cancel()
        self._flush = self._upkeep = None
