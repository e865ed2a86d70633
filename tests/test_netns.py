"""Two hosts joined by a real link: a client finds the server with zeroconf and plays it.

Each host is a network namespace, joined by a veth pair; the test makes and removes them (names
from this process's id, so parallel runs do not collide) and is skipped, saying the command and
the kernel's answer, where namespaces or veth are refused (no root, a locked-down container).
Nothing is shared with the host's own network: the server's mDNS and OSC traffic crosses the veth
link only, as it would cross a LAN.

Run as a script (``python tests/test_netns.py NAME TIMEOUT``, inside the client's namespace) it is
that client: it finds NAME with ``timbrespace send``'s discovery, plays a note and prints what it
saw as JSON.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pythonosc.osc_message import OscMessage

from conftest import OscClient, start_server

#: Seconds each bounded wait may take: a namespace command, zeroconf finding the server, a reply.
IP_TIMEOUT = 10.0
FIND_TIMEOUT = 10.0
REPLY_TIMEOUT = 5.0
TESTS = Path(__file__).resolve().parent


class Refused(Exception):
    """The kernel (or the container around us) would not make a namespace or a veth pair."""


@dataclass(frozen=True)
class Link:
    """Two namespaces joined by one veth pair, and each end's IPv4 address."""

    server_ns: str
    client_ns: str
    server_ip: str
    client_ip: str


def _ip(*args: str) -> None:
    """Run ``ip ARGS``; :class:`Refused` with the command and its stderr when it fails."""
    cmd = ["ip", *args]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=IP_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise Refused(f"`{' '.join(cmd)}` failed: {e}") from None
    if out.returncode != 0:
        raise Refused(f"`{' '.join(cmd)}` exited {out.returncode}: {out.stderr.strip()}")


@pytest.fixture
def link() -> Iterator[Link]:
    """Namespaces ts-srv-PID and ts-cli-PID joined by veth, 10.77.X.1 and 10.77.X.2; removed after."""
    if shutil.which("ip") is None:
        pytest.skip("no `ip` command (iproute2) to make network namespaces with")
    pid = os.getpid()
    srv, cli = f"ts-srv-{pid}", f"ts-cli-{pid}"
    # Interface names are at most 15 bytes; the largest Linux pid has 7 digits.
    veth_srv, veth_cli = f"tsv{pid}s", f"tsv{pid}c"
    net = f"10.77.{pid % 254 + 1}"
    made: list[str] = []
    try:
        try:
            for ns in (srv, cli):
                _ip("netns", "add", ns)
                made.append(ns)
            # Made in place, so no end ever sits in the host's namespace; removing the
            # namespaces removes the pair.
            _ip("link", "add", veth_srv, "netns", srv, "type", "veth", "peer", "name", veth_cli, "netns", cli)
            _ip("netns", "exec", cli, "true")  # exec needs its own mount namespace and /sys
        except Refused as e:
            pytest.skip(f"network namespaces refused here: {e}")
        for ns, dev, host in ((srv, veth_srv, 1), (cli, veth_cli, 2)):
            _ip("-n", ns, "addr", "add", f"{net}.{host}/24", "dev", dev)
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "link", "set", dev, "up")
        yield Link(srv, cli, f"{net}.1", f"{net}.2")
    finally:
        for ns in made:
            with contextlib.suppress(Refused):
                _ip("netns", "del", ns)


def test_client_host_finds_server_by_zeroconf_and_plays(link: Link, tmp_path: Path) -> None:
    name = f"Timbrespace netns {os.getpid()}"
    s = start_server(
        tmp_path,
        prefix=["ip", "netns", "exec", link.server_ns],
        # Every interface, as on a real host: the advertiser publishes the veth address.
        network={"host": "0.0.0.0", "zeroconf": True, "name": name, "interfaces": "all"},
        state={"persist": False},
    )
    try:
        out = subprocess.run(
            ["ip", "netns", "exec", link.client_ns, sys.executable, str(Path(__file__).resolve()),
             name, str(FIND_TIMEOUT)],
            capture_output=True, text=True, timeout=60, cwd=TESTS,
        )
        assert out.returncode == 0, f"client failed:\n{out.stderr}\nserver:\n" + "\n".join(s.lines)
        seen = json.loads(out.stdout)
    finally:
        assert s.stop() == 0, "\n".join(s.lines)
    assert seen["name"] == name
    assert (seen["host"], seen["port"]) == (link.server_ip, s.port)
    # Every reply came over the link, from the address zeroconf gave.
    assert seen["sources"] == [[link.server_ip, s.port]]
    assert seen["hello"][1] == "netns"
    assert seen["playing"]["voices"] == 1 and seen["playing"]["clients"] >= 1
    assert seen["released"]["voices"] == 0


class LinkClient(OscClient):
    """An OscClient on every local address, noting where each datagram came from."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        super().__init__(host, port, timeout, bind="0.0.0.0")
        self.sources: set[tuple[str, int]] = set()

    def recv(self, timeout: float | None = None) -> OscMessage:
        if self._unbundled:
            return self._unbundled.popleft()
        self.sock.settimeout(self.timeout if timeout is None else timeout)
        data, source = self.sock.recvfrom(65536)
        self.sources.add(source)
        return self._message(data)


def play(name: str, find_timeout: float) -> dict[str, Any]:
    """Find ``name`` as ``timbrespace send`` does, say hello, hold a note, release it."""
    from timbrespace.client import discover

    found = discover(find_timeout)
    with contextlib.closing(LinkClient(found.host, found.port, REPLY_TIMEOUT)) as c:
        hello = c.request("/hello", "netns").params
        c.send("/note", 60, 100)
        c.sync(1)
        playing = c.status_until(lambda st: st["voices"] == 1, REPLY_TIMEOUT)
        c.send("/note", 60, 0)
        c.sync(2)
        released = c.status_until(lambda st: st["voices"] == 0, REPLY_TIMEOUT)
        sources = sorted(c.sources)
    return {"name": found.name, "host": found.host, "port": found.port, "hello": hello,
            "playing": playing, "released": released, "sources": sources}


if __name__ == "__main__":
    print(json.dumps(play(sys.argv[1], float(sys.argv[2]))))
