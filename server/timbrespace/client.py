"""``timbrespace send``: one message to a server (found with zeroconf when no host is given)."""

from __future__ import annotations

import asyncio
import socket
import sys
import time
from collections.abc import Sequence

from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.slip import END
from pythonosc.slip import decode as slip_decode
from pythonosc.slip import encode as slip_encode

from timbrespace.protocol import addresses


class SendError(Exception):
    """Could not find the server or build the message."""


def typed_args(address: str, words: Sequence[str]) -> list[int | float | str]:
    """Command-line words as OSC arguments: by the declaration when the address is known."""
    decl = addresses.BY_PATH.get(address)
    out: list[int | float | str] = []
    for i, w in enumerate(words):
        kind = decl.args[i].kind if decl is not None and i < len(decl.args) else None
        if kind == "str":
            out.append(w)
        elif kind == "float":
            try:
                out.append(float(w))
            except ValueError:
                out.append(w)  # the server answers /fail naming what it expected
        else:
            out.append(_guess(w))
    return out


def _guess(w: str) -> int | float | str:
    for conv in (int, float):
        try:
            return conv(w)
        except ValueError:
            pass
    return w


def build(address: str, args: Sequence[int | float | str]) -> bytes:
    """An OSC message as bytes."""
    b = OscMessageBuilder(address)
    for a in args:
        b.add_arg(a)
    return b.build().dgram


def discover(timeout: float = 3.0) -> tuple[str, int]:
    """The first Timbrespace server zeroconf finds."""
    from timbrespace.protocol.discovery import browse

    found = asyncio.run(browse(timeout))
    for f in found:
        if f.protocol == "udp" and f.txt.get("api"):
            return f.host, f.port
    raise SendError(f"no Timbrespace server found with zeroconf within {timeout:.0f} s; give --host")


def send_and_print(
    address: str, words: Sequence[str], *, host: str | None, port: int, tcp: bool, wait: float
) -> int:
    """Send, print each reply as ``/address arg ...``; exit status 1 if a /fail came back."""
    try:
        if host is None:
            host, port = discover()
        data = build(address, typed_args(address, words))
    except (SendError, ValueError) as e:
        print(f"timbrespace send: {e}", file=sys.stderr)
        return 2
    replies = _tcp(host, port, data, wait) if tcp else _udp(host, port, data, wait)
    failed = False
    for r in replies:
        msg = OscMessage(r)
        failed |= msg.address == "/fail"
        print(" ".join([msg.address, *(repr(x) if isinstance(x, str) else str(x) for x in msg.params)]))
    return 1 if failed else 0


def _udp(host: str, port: int, data: bytes, wait: float) -> list[bytes]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(data, (socket.gethostbyname(host), port))
        out: list[bytes] = []
        deadline = time.monotonic() + wait
        while (left := deadline - time.monotonic()) > 0:
            s.settimeout(left if not out else min(left, 0.2))
            try:
                out.append(s.recv(65536))
            except TimeoutError:
                break
        return out


def _tcp(host: str, port: int, data: bytes, wait: float) -> list[bytes]:
    with socket.create_connection((host, port), timeout=wait) as s:
        s.sendall(slip_encode(data))
        buf = b""
        deadline = time.monotonic() + wait
        while (left := deadline - time.monotonic()) > 0:
            s.settimeout(left if not buf else min(left, 0.2))
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            buf += chunk
        return [slip_decode(f + END) for f in buf.split(END) if f]
