"""Who sent a packet, what arrived, and the handler signatures: what a transport hands over.

The transport knows nothing of engines: it turns packets into :class:`Incoming` messages for
one :data:`Handler` and sends back the replies the handler returns.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

__all__ = ["Handler", "Incoming", "MalformedHandler", "Peer", "Reply", "TransportStats", "new_incoming"]


@dataclass(frozen=True, slots=True)
class Peer:
    """Where a packet came from and where its replies go (``conn_id`` identifies a TCP connection)."""

    protocol: Literal["udp", "tcp"]
    host: str
    port: int
    conn_id: int = 0


@dataclass(frozen=True)
class Incoming:
    """One received message; ``arrival`` is ``time.monotonic()`` when its packet arrived."""

    address: str
    args: tuple[object, ...]
    peer: Peer
    arrival: float
    tags: str = ""  # wire type tags, without the comma


Reply = tuple[str, tuple[object, ...]]
Handler = Callable[[Incoming], Iterable[Reply]]
MalformedHandler = Callable[[Peer, str], Iterable[Reply]]

_object_new = object.__new__
_setattr = object.__setattr__  # Incoming is frozen


def new_incoming(address: str, args: tuple[object, ...], peer: Peer, arrival: float, tags: str) -> Incoming:
    """Build an :class:`Incoming` without the frozen ``__init__`` (0.7 us less per message)."""
    inc = _object_new(Incoming)
    _setattr(
        inc, "__dict__", {"address": address, "args": args, "peer": peer, "arrival": arrival, "tags": tags}
    )
    return inc


@dataclass
class TransportStats:
    """Counters; ``tcp_connections`` is the number open now."""

    packets_received: int = 0
    bytes_received: int = 0
    #: UDP datagrams dropped unread: their source was over ``network.udp_rate_limit``.
    rate_limited: int = 0
    #: UDP datagrams dropped unread: their source took more than its share of the server's time
    #: while the receive buffer backed up (see shed.py).
    shed: int = 0
    #: Datagrams from hosts outside sessions.allow, dropped unanswered.
    not_allowed: int = 0
    malformed: int = 0
    tcp_connections: int = 0
    tcp_connections_total: int = 0
    handler_errors: int = 0
    packets_sent: int = 0
    send_dropped: int = 0
    #: Replies not sent because of where they would go (a privileged port, the server itself).
    send_refused: int = 0
    #: Replies dropped because the request's or the packet's reply budget was spent.
    replies_over_budget: int = 0
    #: Replies a handler made that could not be encoded (each answered with a /fail instead).
    encode_errors: int = 0
    #: Requests of a TCP connection not handled because it had closed.
    dropped_closed: int = 0
    bundles_scheduled: int = 0
