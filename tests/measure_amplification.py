"""Reply amplification of a real server over UDP: bytes answered per byte asked (issue 14).

Starts ``timbrespace serve`` on loopback (null audio), sends each probe once from a fresh UDP
socket, collects every reply that arrives within a quiet period and prints the payload ratio
and the ratio on the wire (each datagram plus its 28-byte IPv4 + UDP header).

    PYTHONPATH=server python tests/measure_amplification.py
"""

from __future__ import annotations

import socket
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from timbrespace.protocol.encode import encode_bundle

from conftest import osc, start_server

HEADER = 28  # IPv4 + UDP

PROBES: list[tuple[str, bytes]] = [
    ("/patch/list", osc("/patch/list")),
    ("/patch/list 0 64", osc("/patch/list", 0, 64)),
    ("bundle 2400 req", encode_bundle(None, [osc("/patch/list", 0, 64), osc("/status")] * 1200)),
    ("/status", osc("/status")),
    ("/version", osc("/version")),
    ("1-byte datagram", b"\x00"),
    ("/param x 0.5", osc("/param", "x", 0.5)),
    ("/nope", osc("/nope")),
    ("/latent 2 2", osc("/latent", 2.0, 2.0)),
]


def measure(host: str, port: int, packet: bytes, quiet: float = 0.3) -> tuple[int, int]:
    """(datagrams, payload bytes) answered to one ``packet``."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.bind(("127.0.0.1", 0))
    s.sendto(packet, (host, port))
    s.settimeout(quiet)
    n = size = 0
    try:
        while True:
            size += len(s.recv(65536))
            n += 1
    except TimeoutError:
        pass
    s.close()
    return n, size


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(Path(tmp))
        try:
            print(f"{'request':<20} {'req B':>6} {'replies':>7} {'reply B':>8} {'payload x':>9} {'wire x':>7}")
            for name, packet in PROBES:
                n, size = measure(server.host, server.port, packet)
                wire = (size + n * HEADER) / (len(packet) + HEADER)
                print(f"{name:<20} {len(packet):>6} {n:>7} {size:>8} {size / len(packet):>9.1f} {wire:>7.1f}")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
