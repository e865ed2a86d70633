"""What a handler knows about the message it handles: who sent it, on which layer, when."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from timbrespace.session.clients import Client


@dataclass(frozen=True, slots=True)
class Context:
    """The sender of a message, the layer it addresses and its arrival (``time.monotonic()``)."""

    client: Client
    arrival: float
    layer: int = 0

    @property
    def admin(self) -> bool:
        """Whether the sender may use admin-only addresses (loopback or the configured admin list)."""
        return self.client.admin


def local(arrival: float = 0.0) -> Context:
    """The server's own context: for what it does itself (the initial preset, a render's setup, the bench)."""
    from timbrespace.protocol.peer import Peer
    from timbrespace.session.clients import Client

    return Context(Client(0, Peer("udp", "local", 0), True, arrival, name="server"), arrival)
