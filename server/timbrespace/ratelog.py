"""A logger that a flood cannot turn into a flood of log lines.

Every log call reachable from a received packet goes through one of these: a client that sends a
million bad packets must cost the process that serves everyone a few lines a second, not a
million writes (and, with tracebacks, a disk).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class RateLimitedLog:
    """At most ``per_second`` lines per ``period`` seconds (default one) to ``logger``; the rest
    are counted in one line."""

    def __init__(
        self, logger: logging.Logger, per_second: int = 20, what: str = "messages",
        clock: Callable[[], float] = time.monotonic, period: float = 1.0,
    ) -> None:
        self.logger = logger
        self.per_second = per_second
        self.what = what
        self.clock = clock
        self.period = period
        self.suppressed_total = 0
        self._window = -1e9
        self._count = 0
        self._suppressed = 0

    def log(self, level: int, msg: str, *args: object, exc_info: BaseException | bool | None = None) -> bool:
        """Log unless this period's share is used up; True when the line was written."""
        now = self.clock()
        if now - self._window >= self.period:
            if self._suppressed:
                self.logger.log(level, "... and %d more %s not logged", self._suppressed, self.what)
            self._window, self._count, self._suppressed = now, 0, 0
        if self._count >= self.per_second:
            self._suppressed += 1
            self.suppressed_total += 1
            return False
        self._count += 1
        self.logger.log(level, msg, *args, exc_info=exc_info)
        return True

    def info(self, msg: str, *args: object) -> bool:
        """``log(INFO, ...)``."""
        return self.log(logging.INFO, msg, *args)

    def warning(self, msg: str, *args: object) -> bool:
        """``log(WARNING, ...)``."""
        return self.log(logging.WARNING, msg, *args)

    def error(self, msg: str, *args: object, exc_info: BaseException | bool | None = None) -> bool:
        """``log(ERROR, ...)``, with a traceback when ``exc_info`` is given."""
        return self.log(logging.ERROR, msg, *args, exc_info=exc_info)
