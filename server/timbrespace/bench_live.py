"""A live ``timbrespace serve`` for the bench's sections: started on loopback from the bench's
config, asked over UDP, and its log's end in any error it causes."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from timbrespace.config import Config

__all__ = ["drained", "live_server", "request", "status"]


@contextlib.contextmanager
def live_server(cfg: Config, extra: dict[str, Any] | None = None) -> Iterator[tuple[str, int, int]]:
    """A ``timbrespace serve`` process on loopback: its UDP host, port and pid; ``extra``: config sections."""
    import yaml

    tmp = Path(tempfile.mkdtemp(prefix="timbrespace-bench-"))
    data = {
        # No rate limit: the bench measures how many packets one client can get through.
        "network": {"host": "127.0.0.1", "port": 0, "zeroconf": False, "udp_rate_limit": 0, "http_port": 0},
        "audio": {"backend": "null", "sample_rate": cfg.audio.sample_rate, "block_size": cfg.audio.block_size},
        "patch": {"model": str(cfg.patch.model), "banks": [str(b) for b in cfg.patch.banks],
                  "user_bank": str(tmp / "user.bank")},
        "state": {"persist": False},
        "log_level": "warning",
        **(extra or {}),
    }
    (tmp / "bench.yaml").write_text(yaml.safe_dump(data))
    log = tmp / "server.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "timbrespace", "serve", "--config", str(tmp / "bench.yaml")],
            stdout=subprocess.PIPE, stderr=err, text=True,
        )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if "ready: udp://" not in line:
            raise RuntimeError(f"bench: the server did not start: {line!r}{_tail(log)}")
        addr = line.split("udp://", 1)[1].split()[0]
        host, port = addr.rsplit(":", 1)
        try:
            yield host, int(port), proc.pid
        except Exception as e:
            if proc.poll() is None:
                raise
            # Whatever failed, the reason is the server's: say how it ended and what it logged.
            raise RuntimeError(f"bench: the server exited ({proc.returncode}) during the run: {e}{_tail(log)}") from e
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)


def _tail(log: Path, lines: int = 20) -> str:
    """The end of the server's log, for an error message."""
    try:
        text = log.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return "".join(f"\n  server: {t}" for t in text)


def request(host: str, port: int, address: str, sock: socket.socket | None = None) -> list[Any]:
    """One argument-less request over UDP: its reply's arguments. A caller that asks often passes
    its own ``sock``: each new socket is a new client to the server, and a host's clients are bounded."""
    from timbrespace.protocol.codec import decode_packet
    from timbrespace.protocol.encode import encode_message

    with contextlib.ExitStack() as stack:
        if sock is None:
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
            sock.settimeout(20.0)  # behind a backlog of queued messages, the reply waits its turn
        sock.sendto(encode_message(address, ()), (host, port))
        while True:
            msg = decode_packet(sock.recv(65536))
            if getattr(msg, "address", "") == address + ".reply":
                return list(msg.args)  # type: ignore[union-attr]
            if getattr(msg, "address", "") == "/fail":
                raise RuntimeError(f"bench: {address} failed: {list(msg.args)}")  # type: ignore[union-attr]


def status(host: str, port: int) -> dict[str, Any]:
    args = request(host, port, "/status")
    return dict(zip(args[::2], args[1::2]))


def drained(host: str, port: int, before: float, limit: float = 10.0) -> tuple[int, float]:
    """Messages counted since the ``before`` reading once the backlog is gone, and how long that took.

    Each poll is itself counted, so the backlog is gone when a reading exceeds the previous one by
    exactly that poll.
    """
    t0 = time.monotonic()
    polls = 0
    last: float | None = None
    t_last = t0
    while True:
        n = status(host, port)["received"]
        polls += 1
        if (last is not None and n == last + 1) or time.monotonic() - t0 > limit:
            break
        last, t_last = n, time.monotonic()
        time.sleep(0.05)
    return int(n - before - polls), t_last - t0
