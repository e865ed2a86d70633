"""Mixed, abusive and polling OSC load for the soak and fairness tests (one process each).

``mixed``  every address the server serves, UDP and TCP, immediate and future bundles, bad packets,
           as fast as the server takes them; every note-on gets its note-off, and at the end each key
           this process played is released again over TCP, so a server that lost none holds no note.
``flood``  UDP as fast as the socket sends, valid and invalid packets, never reading a reply.
``tcpflood`` TCP, thousands of frames per write (valid, and unknown addresses), replies drained.
``poll``   a well-behaved client: ``/status`` at a fixed rate, one at a time, over UDP or TCP;
           reports each round trip (ms, with its send time) and every request left unanswered.

``python -m timbrespace.protocol.mixload MODE HOST PORT --duration S`` prints one JSON line.
Only the standard library and this package's encoder are imported (see :mod:`.loadgen`).
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from .encode import encode_bundle, encode_message
from .loadgen import _Conn

__all__ = ["flood", "mixed", "poll", "tcp_flood"]

#: Keys the mixed load plays (a few, so that note-ons and note-offs of processes overlap).
KEYS = range(48, 72)


def _bad(rng: random.Random) -> bytes:
    """One packet the server must reject: garbage, a bad type tag, an unknown address, out of range."""
    kind = rng.randrange(5)
    if kind == 0:
        return rng.randbytes(rng.randrange(1, 64))
    if kind == 1:
        return b"/note\x00\x00\x00,ix\x00" + rng.randbytes(8)
    if kind == 2:
        return encode_message(f"/nope{rng.randrange(1000)}", (1,))
    if kind == 3:
        return encode_message("/note", (200, 100))
    return encode_message("/alpha", (float("nan"),))


def _message(rng: random.Random) -> bytes:
    """One valid message (no notes: those go in pairs, see :func:`mixed`)."""
    k = rng.randrange(14)
    r = rng.random
    table: list[Callable[[], bytes]] = [
        lambda: encode_message("/latent", (r(), r())),
        lambda: encode_message("/alpha", (r(),)),
        lambda: encode_message("/param", ("filter_cutoff", r())),
        lambda: encode_message("/status"),
        lambda: encode_message("/patch/list", (rng.randrange(200), rng.randrange(1, 8))),
        lambda: encode_message("/sync", (rng.randrange(1 << 30),)),
        lambda: encode_message("/pitch", (40.0 + 40.0 * r(),)),
        lambda: encode_message("/version"),
        lambda: encode_message("/source", (rng.randrange(50),)),
        lambda: encode_message("/target", (rng.randrange(50),)),
        lambda: encode_message("/patch/load", (rng.randrange(50),)),
        lambda: encode_message("/engine", ("patch",)),
        lambda: encode_message("/reply/port", (0,)),
        lambda: encode_message("/z", (rng.randrange(64), r())),  # /fail where the timbre engine is off
    ]
    return table[k]()


class _Tcp:
    """A TCP connection that never lets replies pile up: they are drained after every send."""

    def __init__(self, host: str, port: int, framing: str) -> None:
        self.conn = _Conn(host, port, "tcp", framing, 5.0)
        self.sock = self.conn.sock

    def send(self, packet: bytes) -> None:
        self.sock.sendall(self.conn.frame(packet))
        self.drain()

    def drain(self) -> None:
        self.sock.setblocking(False)
        try:
            while True:
                chunk = self.sock.recv(262144)
                if not chunk:
                    raise ConnectionError("the server closed the connection")
        except (BlockingIOError, InterruptedError):
            pass
        finally:
            self.sock.settimeout(5.0)

    def close(self) -> None:
        self.conn.close()

    def sync(self, ident: int) -> None:
        """Send /sync and wait for its /synced: everything sent before has reached the audio."""
        sync = self.conn.frame(encode_message("/sync", (ident,)))
        want = encode_message("/synced", (ident,))
        refused = encode_message("/fail", ("/sync", ""))[:20]  # /fail, its type tags and "/sync"
        self.sock.sendall(sync)
        deadline = time.monotonic() + 30.0
        while time.monotonic() < deadline:
            reply = self.conn.recv()
            if reply == want:
                return
            if reply.startswith(refused):
                # Refused while the audio command queue is full of the other clients' load:
                # what a well-behaved client does, ask again a moment later.
                time.sleep(0.05)
                self.sock.sendall(sync)
        raise TimeoutError("no /synced")


def mixed(host: str, port: int, duration: float, seed: int = 0, framing: str = "slip") -> dict[str, Any]:
    """Mixed load for ``duration`` seconds; returns what was sent and received."""
    rng = random.Random(seed)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.connect((host, port))
    udp.setblocking(False)
    tcp = _Tcp(host, port, framing)
    sent = {"udp": 0, "tcp": 0, "bundles": 0, "future": 0, "bad": 0, "notes": 0}
    udp_replies = closed = 0
    played: set[int] = set()
    held: list[int] = []
    end = time.monotonic() + duration
    while time.monotonic() < end:
        via_tcp = rng.random() < 0.3
        roll = rng.random()
        if roll < 0.2:
            # Notes: a note-on now, its note-off a few packets later (over the same transport).
            if held and (len(held) > 4 or rng.random() < 0.5):
                packet = encode_message("/note", (held.pop(0), 0))
            else:
                key = rng.choice(KEYS)
                held.append(key)
                played.add(key)
                packet = encode_message("/note", (key, rng.randrange(1, 128)))
            sent["notes"] += 1
        elif roll < 0.3:
            packet = encode_bundle(None, [_message(rng) for _ in range(rng.randrange(1, 4))])
            sent["bundles"] += 1
        elif roll < 0.38:
            packet = encode_bundle(time.time() + rng.uniform(0.005, 0.2), [_message(rng)])
            sent["future"] += 1
        elif roll < 0.45:
            packet = _bad(rng)
            sent["bad"] += 1
            via_tcp = via_tcp and len(packet) % 4 == 0 and packet[:1] == b"/"  # garbage on TCP: UDP only
        else:
            packet = _message(rng)
        try:
            if via_tcp:
                try:
                    tcp.send(packet)
                except (ConnectionError, TimeoutError):
                    # The server may close a connection that sends faster than it reads its replies
                    # (its write buffer cap): a client that wants to go on connects again.
                    closed += 1
                    tcp.close()
                    tcp = _Tcp(host, port, framing)
                    continue
                sent["tcp"] += 1
            else:
                udp.send(packet)
                sent["udp"] += 1
        except (BlockingIOError, InterruptedError):
            time.sleep(0.0005)  # the socket buffer is full: the server is behind
        except ConnectionRefusedError:
            pass  # an ICMP error for an earlier datagram
        try:
            while True:
                udp.recv(65536)
                udp_replies += 1
        except (BlockingIOError, InterruptedError, ConnectionRefusedError):
            pass
    # Every key again over TCP: a UDP note-off may have been dropped by the kernel. First wait until
    # the server has read this socket's datagrams (FIFO), so no note-on of ours comes after them.
    _udp_sync(udp, seed & 0x7FFFFFFF)
    tcp.close()
    tcp = _Tcp(host, port, framing)  # a fresh connection: nothing of the flood queued before these
    for key in sorted(played):
        tcp.send(encode_message("/note", (key, 0)))
    tcp.sync(seed & 0x7FFFFFFF)
    tcp.close()
    udp.close()
    return {"mode": "mixed", **sent, "tcp_closed_by_server": closed, "udp_replies": udp_replies,
            "keys": len(played)}


def _udp_sync(udp: socket.socket, ident: int, timeout: float = 60.0) -> None:
    """/sync over UDP until its /synced comes back (a datagram may be dropped: it is sent again)."""
    want = encode_message("/synced", (ident,))
    deadline = time.monotonic() + timeout
    udp.settimeout(1.0)
    while time.monotonic() < deadline:
        udp.send(encode_message("/sync", (ident,)))
        try:
            while udp.recv(65536) != want:
                pass
            return
        except (TimeoutError, ConnectionRefusedError):
            continue
    raise TimeoutError("no /synced over UDP")


def flood(host: str, port: int, duration: float, seed: int = 0) -> dict[str, Any]:
    """UDP as fast as possible: valid and invalid packets, replies never read."""
    rng = random.Random(seed)
    pool = [_bad(rng) for _ in range(64)] + [_message(rng) for _ in range(64)]
    pool += [encode_bundle(None, [_message(rng) for _ in range(3)]) for _ in range(16)]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect((host, port))
    s.setblocking(False)
    sent = full = 0
    send = s.send
    end = time.monotonic() + duration
    i = 0
    while True:
        if not i & 255 and time.monotonic() >= end:
            break
        i += 1
        try:
            send(pool[i % len(pool)])
            sent += 1
        except (BlockingIOError, InterruptedError):
            full += 1
        except ConnectionRefusedError:
            pass
    s.close()
    return {"mode": "flood", "sent": sent, "socket_full": full}


def tcp_flood(host: str, port: int, duration: float, seed: int = 0, framing: str = "slip") -> dict[str, Any]:
    """TCP as fast as the server takes it: thousands of frames per write, its replies drained unread."""
    rng = random.Random(seed)
    tcp = _Tcp(host, port, framing)
    chunk = b"".join(tcp.conn.frame(_message(rng) if i % 4 else encode_message(f"/nope{i}"))
                     for i in range(2000))
    sent = closed = 0
    end = time.monotonic() + duration
    while time.monotonic() < end:
        try:
            tcp.sock.sendall(chunk)
            tcp.drain()
        except (ConnectionError, TimeoutError):
            closed += 1
            tcp.close()
            tcp = _Tcp(host, port, framing)
            continue
        sent += 2000
    tcp.close()
    return {"mode": "tcpflood", "sent": sent, "closed_by_server": closed}


def poll(host: str, port: int, duration: float, protocol: str = "tcp", rate: float = 20.0,
         framing: str = "slip", timeout: float = 2.0) -> dict[str, Any]:
    """``/status`` every 1/rate s, one at a time; a request unanswered within ``timeout`` is lost."""
    conn = _Conn(host, port, protocol, framing, timeout)
    conn.sock.settimeout(timeout)
    req = conn.frame(encode_message("/status"))
    want = encode_message("/status.reply")[:-4]
    start = time.monotonic()
    rtts: list[tuple[float, float]] = []  # (seconds since start, round trip ms)
    lost = sent = 0
    k = 0
    while (due := start + k / rate) < start + duration:
        k += 1
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        elif delay < -1.0 / rate:
            # Behind by more than a period: skip the slots missed rather than catch up back to back
            # (a burst would be neither well-behaved nor what the windows' figures should show).
            k = int((time.monotonic() - start) * rate) + 1
        if protocol == "udp":
            _discard_late(conn.sock, timeout)  # replies to requests already counted lost would skew the next
        t0 = time.perf_counter()
        conn.send(req)
        sent += 1
        try:
            while not conn.recv().startswith(want):
                pass
        except TimeoutError:
            lost += 1
            if protocol == "tcp":
                break  # the stream is out of step now; a TCP loss is a failure in itself
            continue
        rtts.append((round(time.monotonic() - start, 3), (time.perf_counter() - t0) * 1000.0))
    conn.close()
    return {"mode": "poll", "protocol": protocol, "sent": sent, "lost": lost, "rtts": rtts}


def _discard_late(sock: socket.socket, timeout: float) -> None:
    sock.setblocking(False)
    try:
        while True:
            sock.recv(65536)
    except (BlockingIOError, InterruptedError, ConnectionRefusedError):
        pass
    finally:
        sock.settimeout(timeout)


def percentiles(ms: Sequence[float]) -> dict[str, float]:
    """p50, p99 and max of round trips in ms (0 when there are none)."""
    s = sorted(ms)
    if not s:
        return {"n": 0, "p50": 0.0, "p99": 0.0, "max": 0.0}
    return {"n": len(s), "p50": s[len(s) // 2], "p99": s[min(len(s) - 1, int(0.99 * len(s)))], "max": s[-1]}


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``mixload {mixed,flood,poll} HOST PORT --duration S [--seed N] [--tcp] [--rate HZ]``."""
    p = argparse.ArgumentParser(prog="python -m timbrespace.protocol.mixload", description=__doc__)
    p.add_argument("mode", choices=["mixed", "flood", "tcpflood", "poll"])
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tcp", action="store_true", help="poll over TCP (slip framing)")
    p.add_argument("--rate", type=float, default=20.0, help="polls per second")
    p.add_argument("--timeout", type=float, default=2.0, help="seconds after which a poll counts as lost")
    a = p.parse_args(argv)
    if a.mode == "mixed":
        out = mixed(a.host, a.port, a.duration, a.seed)
    elif a.mode == "flood":
        out = flood(a.host, a.port, a.duration, a.seed)
    elif a.mode == "tcpflood":
        out = tcp_flood(a.host, a.port, a.duration, a.seed)
    else:
        out = poll(a.host, a.port, a.duration, "tcp" if a.tcp else "udp", a.rate, timeout=a.timeout)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
