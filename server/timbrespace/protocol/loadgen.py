"""Client-side OSC load generator: request/reply round trips and bursts over UDP or TCP.

Run it in a process of its own (:func:`spawn_load`, or ``python -m timbrespace.protocol.loadgen``)
so that the client does not share the server's interpreter.  Only the standard library and the
codec are imported.

Replies are matched to requests first-in first-out (a single server answers in order); a reply
whose address is not ``expect`` (``/fail``, say) is counted in ``unexpected``.  Requests still
unanswered ``timeout`` seconds after the last reply count as lost.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from .encode import encode_message

__all__ = ["LoadResult", "run_burst", "run_load", "spawn_load"]


@dataclass(frozen=True)
class LoadResult:
    """Figures of one run; latencies are round-trip times in milliseconds."""

    mode: str
    protocol: str
    in_flight: int
    busy_poll: bool
    sent: int
    received: int
    lost: int
    unexpected: int
    elapsed_s: float
    rate: float  # replies per second
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @property
    def loss(self) -> float:
        """Fraction of requests never answered."""
        return self.lost / self.sent if self.sent else 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-ready), with ``loss`` added."""
        return {**asdict(self), "loss": self.loss}


def _percentile(sorted_ms: list[float], q: float) -> float:
    if not sorted_ms:
        return 0.0
    return sorted_ms[min(len(sorted_ms) - 1, int(q * len(sorted_ms)))]


class _Conn:
    """A blocking client socket that sends requests and returns whole reply packets."""

    def __init__(
        self, host: str, port: int, protocol: str, framing: str, timeout: float, busy: bool = False
    ) -> None:
        kind = socket.SOCK_DGRAM if protocol == "udp" else socket.SOCK_STREAM
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, kind)
        if protocol == "udp":
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        else:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        self.udp = protocol == "udp"
        self.busy = busy and self.udp
        self.timeout = timeout
        if self.busy:
            self.sock.setblocking(False)
        self.where = f"{protocol} {host}:{port}"
        self.slip = framing == "slip"
        self._buf = b""
        self._ready: deque[bytes] = deque()

    def frame(self, packet: bytes) -> bytes:
        """The bytes to send for one packet."""
        if self.udp:
            return packet
        if self.slip:
            return b"\xc0" + packet.replace(b"\xdb", b"\xdb\xdd").replace(b"\xc0", b"\xdb\xdc") + b"\xc0"
        return len(packet).to_bytes(4, "big") + packet

    def send(self, data: bytes) -> None:
        if self.udp:
            self.sock.send(data)
        else:
            self.sock.sendall(data)

    def recv(self) -> bytes:
        """One reply packet; raises TimeoutError after ``timeout`` idle seconds."""
        if self.busy:
            return self._spin()
        if self.udp:
            return self.sock.recv(65536)
        while not self._ready:
            chunk = self.sock.recv(262144)
            if not chunk:
                raise ConnectionError("server closed the connection")
            buf = self._buf + chunk
            if self.slip:
                *frames, self._buf = buf.split(b"\xc0")
                self._ready.extend(
                    f.replace(b"\xdb\xdc", b"\xc0").replace(b"\xdb\xdd", b"\xdb") for f in frames if f
                )
            else:
                while len(buf) >= 4 and len(buf) >= 4 + (n := int.from_bytes(buf[:4], "big")):
                    self._ready.append(buf[4 : 4 + n])
                    buf = buf[4 + n :]
                self._buf = buf
        return self._ready.popleft()

    def _spin(self) -> bytes:
        """Poll without sleeping, so that no reply has to wake this process up."""
        recv, deadline = self.sock.recv, 0.0
        while True:
            try:
                return recv(65536)
            except BlockingIOError:
                now = time.perf_counter()
                if not deadline:
                    deadline = now + self.timeout
                elif now > deadline:
                    raise TimeoutError from None

    def close(self) -> None:
        self.sock.close()


def run_load(
    host: str,
    port: int,
    *,
    address: str = "/status",
    args: Sequence[object] = (),
    expect: str | None = "/status.reply",
    in_flight: int = 256,
    duration: float = 3.0,
    protocol: Literal["udp", "tcp"] = "udp",
    framing: Literal["slip", "length"] = "slip",
    timeout: float = 0.5,
    busy_poll: bool = False,
) -> LoadResult:
    """Keep ``in_flight`` requests outstanding for ``duration`` seconds; blocking.

    Each reply releases the next request.  ``expect`` None accepts any reply address.
    ``busy_poll`` (UDP) polls the socket instead of sleeping in ``recv``, so that no reply has to
    wake the client up; it only pays where a core is free for the spinning (measured here on two
    cores: slower than sleeping, since the server sends its replies in groups).
    """
    conn = _Conn(host, port, protocol, framing, timeout, busy_poll)
    req = conn.frame(encode_message(address, tuple(args)))
    want = encode_message(expect)[:-4] if expect else b""
    send, recv = conn.send, conn.recv
    perf = time.perf_counter
    pending: deque[float] = deque()
    lat: list[float] = []
    sent = lost = unexpected = 0
    start = perf()
    end = start + duration
    last = start
    try:
        while True:
            while len(pending) < in_flight and perf() < end:
                pending.append(perf())
                send(req)
                sent += 1
            if not pending:
                break
            try:
                data = recv()
            except TimeoutError:
                lost += len(pending)
                pending.clear()
                continue
            last = perf()
            lat.append(last - pending.popleft())
            if want and not data.startswith(want):
                unexpected += 1
            if last < end and len(pending) < in_flight:
                pending.append(last)
                send(req)
                sent += 1
    except ConnectionRefusedError:
        raise ConnectionError(f"nothing listens on {conn.where}") from None
    finally:
        conn.close()
    return _result(
        "window", protocol, in_flight, conn.busy, sent, len(lat), lost, unexpected, last - start, lat
    )


def run_burst(
    host: str,
    port: int,
    *,
    count: int = 5000,
    address: str = "/status",
    args: Sequence[object] = (),
    expect: str | None = "/status.reply",
    timeout: float = 0.5,
) -> LoadResult:
    """Send ``count`` UDP requests back to back without waiting, then count the replies.

    Loss here is what the socket buffers could not hold; latency is from each send to its reply.
    """
    conn = _Conn(host, port, "udp", "slip", timeout)
    req = encode_message(address, tuple(args))
    want = encode_message(expect)[:-4] if expect else b""
    perf = time.perf_counter
    stamps: deque[float] = deque()
    lat: list[float] = []
    unexpected = 0
    start = perf()
    try:
        for _ in range(count):
            stamps.append(perf())
            conn.send(req)
        while len(lat) < count:
            try:
                data = conn.recv()
            except TimeoutError:
                break
            lat.append(perf() - stamps.popleft())
            if want and not data.startswith(want):
                unexpected += 1
    except ConnectionRefusedError:
        raise ConnectionError(f"nothing listens on {conn.where}") from None
    finally:
        conn.close()
    elapsed = perf() - start
    return _result("burst", "udp", count, False, count, len(lat), count - len(lat), unexpected, elapsed, lat)


def _result(
    mode: str,
    protocol: str,
    in_flight: int,
    busy: bool,
    sent: int,
    received: int,
    lost: int,
    unexpected: int,
    elapsed: float,
    lat: list[float],
) -> LoadResult:
    ms = sorted(x * 1000.0 for x in lat)
    return LoadResult(
        mode,
        protocol,
        in_flight,
        busy,
        sent,
        received,
        lost,
        unexpected,
        elapsed,
        received / elapsed if elapsed > 0 else 0.0,
        _percentile(ms, 0.50),
        _percentile(ms, 0.90),
        _percentile(ms, 0.99),
        ms[-1] if ms else 0.0,
    )


def spawn_load(host: str, port: int, *, mode: Literal["window", "burst"] = "window", **kw: Any) -> LoadResult:
    """Run :func:`run_load` (or :func:`run_burst`) in a fresh Python process and return its figures."""
    params = {"host": host, "port": port, "mode": mode, **kw}
    limit = float(kw.get("duration", 3.0)) + 30.0
    proc = subprocess.run(
        [sys.executable, "-m", "timbrespace.protocol.loadgen", "--json", json.dumps(params)],
        capture_output=True,
        text=True,
        timeout=limit,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"load generator failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    d = json.loads(proc.stdout.strip().splitlines()[-1])
    d.pop("loss", None)
    return LoadResult(**d)


def _run(params: dict[str, Any]) -> LoadResult:
    params = dict(params)
    host, port, mode = params.pop("host"), int(params.pop("port")), params.pop("mode", "window")
    if "args" in params:
        params["args"] = tuple(params["args"])
    return run_burst(host, port, **params) if mode == "burst" else run_load(host, port, **params)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``loadgen HOST PORT [--in-flight N] [--duration S] [--tcp] [--burst N]`` or ``--json PARAMS``."""
    p = argparse.ArgumentParser(prog="python -m timbrespace.protocol.loadgen", description=__doc__)
    p.add_argument("host", nargs="?", default="127.0.0.1")
    p.add_argument("port", nargs="?", type=int, default=57130)
    p.add_argument("--address", default="/status")
    p.add_argument("--expect", default="/status.reply")
    p.add_argument("--in-flight", type=int, default=256)
    p.add_argument("--duration", type=float, default=3.0)
    p.add_argument("--tcp", choices=["slip", "length"], help="use TCP with this framing")
    p.add_argument("--burst", type=int, help="send this many UDP requests back to back instead")
    p.add_argument("--busy-poll", action="store_true", help="poll the socket instead of sleeping in recv")
    p.add_argument("--json", help="all parameters as one JSON object (used by spawn_load)")
    a = p.parse_args(argv)
    if a.json:
        result = _run(json.loads(a.json))
    elif a.burst:
        result = run_burst(a.host, a.port, count=a.burst, address=a.address, expect=a.expect or None)
    else:
        result = run_load(
            a.host,
            a.port,
            address=a.address,
            expect=a.expect or None,
            in_flight=a.in_flight,
            duration=a.duration,
            protocol="tcp" if a.tcp else "udp",
            framing=a.tcp or "slip",
            busy_poll=a.busy_poll,
        )
    print(json.dumps(result.to_dict()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
