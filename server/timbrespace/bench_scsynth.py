"""``timbrespace bench``'s peer: scsynth on a JACK dummy server, the same /status round trips."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from timbrespace.config import Config


@contextlib.contextmanager
def _scsynth(sr: int, bs: int) -> Iterator[int | None]:
    if not (shutil.which("scsynth") and shutil.which("jackd")):
        yield None
        return
    from timbrespace.audio.host import jack_running

    procs: list[subprocess.Popen[bytes]] = []
    port: int | None = None
    try:
        if not jack_running():
            procs.append(subprocess.Popen(["jackd", "-d", "dummy", "-r", str(sr), "-p", str(bs)],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            for _ in range(50):
                if jack_running():
                    break
                time.sleep(0.1)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        procs.append(subprocess.Popen(["scsynth", "-u", str(port), "-i", "0", "-o", "2", "-R", "0"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for _ in range(100):
            try:
                _sc_status(port)
                break
            except OSError:
                time.sleep(0.1)
        else:
            yield None
            return
        yield port
    finally:
        for p in reversed(procs):
            p.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(5)
        # scsynth leaves its 8 MB shared-memory interface behind when terminated
        if port is not None:
            with contextlib.suppress(OSError):
                Path(f"/dev/shm/SuperColliderServer_{port}").unlink()


def _sc_status(port: int) -> None:
    from timbrespace.protocol.encode import encode_message

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.2)
        s.sendto(encode_message("/status", ()), ("127.0.0.1", port))
        s.recv(65536)


def bench_scsynth(cfg: Config, quick: bool) -> dict[str, Any] | None:
    """The same /status round trips against scsynth on this machine."""
    from timbrespace.protocol.loadgen import spawn_load

    d = 2.0 if quick else 5.0
    with _scsynth(cfg.audio.sample_rate, cfg.audio.block_size) as port:
        if port is None:
            return None
        return {
            "status_256_in_flight": spawn_load("127.0.0.1", port, in_flight=256, duration=d).to_dict(),
            "status_one_at_a_time": spawn_load("127.0.0.1", port, in_flight=1, duration=d).to_dict(),
        }
