"""UDP fan-out beside the event loop: the same datagrams to many addresses, sent by a thread.

A feedback tick sends one or a few datagrams to every subscriber. Each ``sendto`` on loopback or
a LAN is a system call that also wakes the receiver, and in a tick to a hundred subscribers those
calls, not the Python around them, are what held the event loop (docs/scaling.md). The loop now
hands each tick's datagrams and addresses over (:meth:`UdpFanout.send`) and goes on; one thread
sends them, releasing the interpreter's lock in every call, so requests keep being read meanwhile.

The hand-over is bounded (:data:`MAX_JOBS`): a thread that falls behind loses the oldest jobs,
counted, never the loop's time or memory. Ordering: a job's datagrams go out in order, and jobs in
the order handed over; a reply sent by the loop itself may pass a feedback datagram still queued,
as it may pass one in the network.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections import deque
from collections.abc import Sequence

from timbrespace.ratelog import RateLimitedLog

log = logging.getLogger(__name__)

#: Jobs (one group's datagrams for its addresses) waiting at most; past it the oldest is dropped.
MAX_JOBS = 256

Address = tuple[str, int]


class UdpFanout:
    """One thread that sends handed-over datagrams on the server's UDP socket."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._jobs: deque[tuple[Sequence[bytes], Sequence[Address]]] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._log = RateLimitedLog(log, 1, "feedback send errors", period=10.0)
        #: Datagrams sent, jobs dropped because the thread was behind, datagrams that failed.
        self.sent = 0
        self.dropped_jobs = 0
        self.failed = 0
        self._thread = threading.Thread(target=self._run, name="udp-fanout", daemon=True)
        self._thread.start()

    def send(self, packets: Sequence[bytes], addrs: Sequence[Address]) -> None:
        """Queue ``packets`` (in order) for each of ``addrs``; returns at once."""
        if not packets or not addrs:
            return
        with self._cond:
            if self._closed:
                return
            if len(self._jobs) >= MAX_JOBS:
                self._jobs.popleft()
                self.dropped_jobs += 1
            self._jobs.append((packets, addrs))
            self._cond.notify()

    @property
    def waiting(self) -> int:
        """Jobs not sent yet."""
        return len(self._jobs)

    def close(self, timeout: float = 2.0) -> None:
        """Send what waits (within ``timeout``), then stop the thread."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout)

    def _run(self) -> None:
        sock = self._sock
        while True:
            with self._cond:
                while not self._jobs and not self._closed:
                    self._cond.wait()
                if not self._jobs:
                    return
                packets, addrs = self._jobs.popleft()
            for addr in addrs:
                for packet in packets:
                    try:
                        sock.sendto(packet, addr)
                        self.sent += 1
                    except (BlockingIOError, InterruptedError):
                        self.failed += 1  # the socket's buffer is full: this datagram is lost, as in the network
                    except OSError as exc:  # the socket closed at shutdown, or the address is unreachable
                        self.failed += 1
                        if sock.fileno() < 0:
                            return
                        self._log.warning("feedback to %s:%s failed: %s", addr[0], addr[1], exc)
