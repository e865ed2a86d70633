"""``timbrespace send``: one message to a server (found with zeroconf when no host is given).

Every call ends with an answer or says why there was none: an address with a reply waits for it,
and one without (``/note``, ``/latent``, ...) is followed by a ``/sync``, whose ``/synced`` confirms
that the server took the message (``--wait 0`` only sends).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

from pythonosc.osc_message import OscMessage, ParseError
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.slip import END
from pythonosc.slip import decode as slip_decode
from pythonosc.slip import encode as slip_encode

from timbrespace.protocol import addresses
from timbrespace.protocol.declaration import INT32

#: Seconds zeroconf may take to find a first server; after it, :data:`SETTLE` for any others.
DISCOVER_TIMEOUT = 3.0
#: Seconds to wait after the first server answers for others that answer the same query (so two
#: servers on a LAN are both seen, and the choice is said, without waiting the whole timeout).
SETTLE = 0.25
#: Seconds ``--list`` browses.
LIST_TIMEOUT = 2.0
#: Seconds to keep reading after a reply, for the rest of a multi-message answer.
TAIL = 0.2
#: Seconds each of several servers found has to answer ``/version`` before the next is tried.
PROBE_WAIT = 0.5


class SendError(Exception):
    """Could not find the server, reach it or build the message."""


@dataclass(frozen=True)
class Server:
    """A server found with zeroconf."""

    name: str
    host: str
    port: int


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


async def _find(timeout: float, settle: float | None) -> list[Server]:
    """Servers zeroconf finds: all within ``timeout``, or (``settle`` given) those that answer
    within ``settle`` seconds of the first."""
    from timbrespace.protocol.discovery import Browser, Found

    def servers(found: dict[tuple[str, str], Found]) -> list[Server]:
        return sorted((Server(f.name, f.host, f.port) for f in found.values() if f.protocol == "udp"
                       and f.txt.get("api")), key=lambda s: s.name)

    async with Browser(protocols=("udp",)) as b:
        if settle is None:
            await asyncio.sleep(timeout)
        elif await b.wait_for(lambda found: servers(found), timeout):
            await asyncio.sleep(settle)
        return servers(b.found)


def discover(timeout: float = DISCOVER_TIMEOUT) -> Server:
    """The first Timbrespace server zeroconf finds; when several answer, the first by name that
    answers ``/version`` (said on stderr), since a record can outlive its server in a cache."""
    found = asyncio.run(_find(timeout, SETTLE))
    if not found:
        raise SendError(f"no Timbrespace server found with zeroconf within {timeout:g} s; give --host "
                        "(and --port), or start one with `timbrespace serve`")
    if len(found) == 1:
        return found[0]
    answering = next((s for s in found if _answers(s)), None)
    # None answers: the first, and the send says it got no reply.
    chosen = answering or found[0]
    silent = found[: found.index(answering)] if answering else []
    skipped = "".join(f"; '{s.name}' at {s.host}:{s.port} did not answer" for s in silent)
    print(f"timbrespace send: {len(found)} servers found{skipped}; using '{chosen.name}' at {chosen.host}:"
          f"{chosen.port} (--list shows them, --host picks one)", file=sys.stderr)
    return chosen


def _answers(server: Server) -> bool:
    """Whether ``server`` answers ``/version`` over UDP within PROBE_WAIT."""
    try:
        replies = _udp(server.host, server.port, [build("/version", [])], PROBE_WAIT, None)
    except SendError:
        return False
    for r in replies:
        with contextlib.suppress(ParseError):
            if OscMessage(r).address == "/version.reply":
                return True
    return False


def list_servers(timeout: float = LIST_TIMEOUT) -> int:
    """Print every server zeroconf finds within ``timeout``; exit status 1 when none."""
    found = asyncio.run(_find(timeout, None))
    for s in found:
        print(f"{s.name}\t{s.host}\t{s.port}")
    if not found:
        print(f"timbrespace send: no Timbrespace server found with zeroconf within {timeout:g} s", file=sys.stderr)
        return 1
    return 0


def send_and_print(
    address: str, words: Sequence[str], *, host: str | None, port: int, tcp: bool, wait: float
) -> int:
    """Send, print each reply as ``/address arg ...``.

    Exit status: 0 answered, 1 a /fail came back or no answer came within ``wait``, 2 the message
    could not be sent (no server found, unknown host, connection refused).
    """
    try:
        if host is None:
            found = discover()
            host, port = found.host, found.port
        data = [build(address, typed_args(address, words))]
        decl = addresses.BY_PATH.get(address)
        sync_id: int | None = None
        if wait > 0 and (decl is None or decl.reply is None):
            # No reply of its own (or an address the server will /fail): /sync confirms delivery.
            sync_id = random.randint(1, INT32[1])
            data.append(build("/sync", [sync_id]))
        replies = (_tcp if tcp else _udp)(host, port, data, wait, sync_id)
    except (SendError, ValueError) as e:
        print(f"timbrespace send: {e}", file=sys.stderr)
        return 2
    if wait <= 0:
        return 0
    failed = answered = False
    for r in replies:
        try:
            msg = OscMessage(r)
        except ParseError:
            print(f"timbrespace send: {host}:{port} answered {len(r)} bytes that are not OSC; is it a Timbrespace "
                  "server?", file=sys.stderr)
            failed = True
            continue
        if msg.address == "/synced" and msg.params == [sync_id]:
            answered = True
            continue
        answered = True
        failed |= msg.address == "/fail"
        print(" ".join([msg.address, *(repr(x) if isinstance(x, str) else str(x) for x in msg.params)]))
    if not answered:
        print(f"timbrespace send: no reply from {host}:{port} ({'TCP' if tcp else 'UDP'}) within {wait:g} s; is a "
              "Timbrespace server listening there? (--wait sets how long to wait)", file=sys.stderr)
        return 1
    return 1 if failed else 0


def _resolve(host: str) -> str:
    try:
        return socket.gethostbyname(host)
    except (socket.gaierror, UnicodeError) as e:
        raise SendError(f"unknown host {host!r} ({getattr(e, 'strerror', None) or e})") from None


def _done(replies: list[bytes], sync_id: int | None) -> bool:
    """Whether the /synced that confirms delivery has come (nothing else follows it)."""
    if sync_id is None or not replies:
        return False
    try:
        msg = OscMessage(replies[-1])
    except ParseError:
        return False
    return msg.address == "/synced" and msg.params == [sync_id]


def _udp(host: str, port: int, data: list[bytes], wait: float, sync_id: int | None) -> list[bytes]:
    ip = _resolve(host)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            for d in data:
                s.sendto(d, (ip, port))
        except OSError as e:
            raise SendError(f"cannot send to {host}:{port}: {e.strerror or e}") from None
        out: list[bytes] = []
        deadline = time.monotonic() + wait
        while (left := deadline - time.monotonic()) > 0 and not _done(out, sync_id):
            s.settimeout(left if not out else min(left, TAIL))
            try:
                out.append(s.recv(65536))
            except TimeoutError:
                break
            except ConnectionRefusedError:  # an ICMP port unreachable, where the system reports it
                break
        return out


def _tcp(host: str, port: int, data: list[bytes], wait: float, sync_id: int | None) -> list[bytes]:
    ip = _resolve(host)
    try:
        s = socket.create_connection((ip, port), timeout=max(wait, 1.0))
    except ConnectionRefusedError:
        raise SendError(f"cannot connect to {host}:{port} over TCP: connection refused (is a Timbrespace "
                        "server running there?)") from None
    except TimeoutError:
        raise SendError(f"cannot connect to {host}:{port} over TCP: no answer within {max(wait, 1.0):g} s") from None
    except OSError as e:
        raise SendError(f"cannot connect to {host}:{port} over TCP: {e.strerror or e}") from None
    with s:
        try:
            s.sendall(b"".join(slip_encode(d) for d in data))
        except OSError as e:
            raise SendError(f"{host}:{port} over TCP: {e.strerror or e}") from None
        buf = b""
        out: list[bytes] = []
        deadline = time.monotonic() + wait
        while (left := deadline - time.monotonic()) > 0 and not _done(out, sync_id):
            s.settimeout(left if not buf else min(left, TAIL))
            try:
                chunk = s.recv(65536)
            except (TimeoutError, ConnectionResetError):
                break
            if not chunk:
                break
            buf += chunk
            *frames, buf = buf.split(END)
            out += [slip_decode(f + END) for f in frames if f]
        return out
