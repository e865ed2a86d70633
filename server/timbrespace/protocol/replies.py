"""Where replies may go and how big they may get: the send-side policy of the transport.

- Never to a privileged port (< 1024: echo, chargen, DNS... a reply there can start a loop or
  reach a service that was never asked), never to one of the server's own listening ports on
  one of its own addresses (a reply to itself is a request to itself: an endless loop).
- A UDP source address can be spoofed, so the replies to one datagram are bounded by a small
  multiple of its size (:func:`packet_budget`), with a floor that every single reply the server
  makes fits in (``/status.reply``, a page of ``/patch/list``, a clipped ``/fail``). A TCP peer
  has proved its address by the handshake; its packets get a larger, still bounded, budget.
- A ``/fail`` is clipped to fit, never dropped for being too long (:func:`encode_fail`).
"""

from __future__ import annotations

import socket

from .encode import encode_message

#: Replies to one UDP datagram, in bytes, at most this many times its size...
UDP_REPLY_FACTOR = 4
#: ... or this many bytes, whichever is more: the largest single reply fits (a /status.reply from
#: a GPU server on PortAudio, or during an audio restart, is 260 bytes; see tests/test_replies.py).
UDP_REPLY_FLOOR = 320
#: Replies to one TCP packet (a 64 KB bundle included), in bytes.
TCP_REPLY_BUDGET = 1 << 20
#: Replies to one request (one message), in bytes, whatever the transport.
REQUEST_REPLY_BUDGET = 64 << 10
#: What a ``/fail`` echoes of the rejected address and says of why, in UTF-8 bytes at most.
FAIL_ADDRESS_BYTES = 200
FAIL_REASON_BYTES = 600
#: The smallest ``/fail`` (both strings clipped to nothing but an ellipsis).
FAIL_MIN_BYTES = 28
#: Ports below this are privileged; replies never go there.
FIRST_UNPRIVILEGED_PORT = 1024
#: Hosts remembered by :class:`OwnAddresses` (a spoofed flood of sources cannot grow it).
_HOST_CACHE = 256
_ELLIPSIS = "…"


def packet_budget(protocol: str, size: int) -> int:
    """Bytes of replies one received packet of ``size`` bytes may cause."""
    if protocol == "tcp":
        return TCP_REPLY_BUDGET
    return max(UDP_REPLY_FACTOR * size, UDP_REPLY_FLOOR)


def clip(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes, ending with an ellipsis when cut."""
    b = text.encode("utf-8", "surrogatepass")
    if len(b) <= limit:
        return text
    room = max(limit - len(_ELLIPSIS.encode()), 0)
    return b[:room].decode("utf-8", "ignore") + _ELLIPSIS if limit >= 3 else ""


def clip_fail(address: str, reason: str) -> tuple[str, str]:
    """The ``/fail`` arguments clipped to :data:`FAIL_ADDRESS_BYTES` and :data:`FAIL_REASON_BYTES`."""
    return clip(address, FAIL_ADDRESS_BYTES), clip(reason, FAIL_REASON_BYTES)


def _padded(n: int) -> int:
    return (n // 4 + 1) * 4


def encode_fail(address: str, reason: str, limit: int) -> bytes:
    """``/fail address reason`` encoded in at most ``limit`` bytes (at least FAIL_MIN_BYTES)."""
    address, reason = clip_fail(address, reason)
    body = max(limit, FAIL_MIN_BYTES) - 12  # "/fail" and ",ss" take 12 bytes
    a = len(address.encode("utf-8", "surrogatepass"))
    if _padded(a) + _padded(len(reason.encode("utf-8", "surrogatepass"))) > body:
        address = clip(address, min(a, max(body // 3 - 1, 3)))
        room = body - _padded(len(address.encode("utf-8", "surrogatepass")))
        reason = clip(reason, (room // 4) * 4 - 1)
    return encode_message("/fail", (address, reason))


class OwnAddresses:
    """The server's own listening ports and whether a host is one of this machine's addresses.

    A host is this machine's when a socket can be bound to it (loopback, any interface address,
    the unspecified address): asked only for a destination port that is one of ``ports``, and
    remembered for at most :data:`_HOST_CACHE` hosts.
    """

    def __init__(self) -> None:
        self.ports: set[int] = set()
        self._hosts: dict[str, bool] = {}

    def is_own(self, host: str, port: int) -> bool:
        """True when ``(host, port)`` reaches one of the server's own listening sockets."""
        return port in self.ports and self.is_local(host)

    def refusal(self, host: str, port: int) -> str | None:
        """Why replies must not go to ``(host, port)``, or None when they may."""
        if port < FIRST_UNPRIVILEGED_PORT:
            return f"port {port} is privileged (below {FIRST_UNPRIVILEGED_PORT})"
        if port in self.ports and self.is_local(host):
            return f"port {port} is the server's own"
        return None

    def is_local(self, host: str) -> bool:
        """True when ``host`` is an address of this machine."""
        known = self._hosts.get(host)
        if known is None:
            if len(self._hosts) >= _HOST_CACHE:
                self._hosts.clear()
            known = self._hosts[host] = _bindable(host)
        return known


def _bindable(host: str) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.bind((host, 0))
    except OSError:  # EADDRNOTAVAIL: not ours; anything else: not an address we could send to
        return False
    return True
