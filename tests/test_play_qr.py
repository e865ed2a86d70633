"""`timbrespace serve --qr`: the /play page's URL as a QR code in the terminal, and the LAN address
it names; on a real server."""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path

import ifaddr
import segno

from timbrespace.web.url import lan_address, page_url

from conftest import start_server

#: Half-block characters of segno's compact terminal output -> (top, bottom) modules, True = light.
HALVES = {"█": (True, True), "▀": (True, False), "▄": (False, True), " ": (False, False)}


def _modules(lines: list[str]) -> list[list[bool]]:
    """The QR code's rows (True = light) drawn two to a line."""
    rows: list[list[bool]] = []
    for line in lines:
        rows.append([HALVES[ch][0] for ch in line])
        rows.append([HALVES[ch][1] for ch in line])
    return rows


def test_serve_qr_prints_the_page_url_as_a_qr_code(tmp_path: Path) -> None:
    s = start_server(tmp_path, "--qr")
    try:
        deadline = time.monotonic() + 10
        while not any(line.startswith("scan to play: ") for line in s.lines) and time.monotonic() < deadline:
            time.sleep(0.05)
        at = next(i for i, line in enumerate(s.lines) if line.startswith("scan to play: "))
        url = s.lines[at].removeprefix("scan to play: ")
        ready = next(line for line in s.lines if " ready: " in line)
        assert ready.endswith(f", page {url})")  # the ready line names the same page
        assert url.startswith("http://127.0.0.1:") and url.endswith("/play")  # the test server's host
        with urllib.request.urlopen(url, timeout=10) as r:
            assert r.status == 200 and b"<canvas id=\"pad\"" in r.read()
        qr = segno.make(url, error="m")
        size = qr.symbol_size(border=2)[1]
        drawn = s.lines[at + 1: at + 1 + (size + 1) // 2]
        # The rows printed are the code of that URL (a light quiet zone around dark-on-light modules).
        want = [[not dark for dark in row] for row in qr.matrix_iter(border=2)]
        got = _modules(drawn)[:size]
        assert got == want
    finally:
        assert s.stop() == 0


def test_page_url_names_a_lan_address_when_listening_on_every_interface() -> None:
    assert page_url("127.0.0.1", 57131) == "http://127.0.0.1:57131/play"
    assert page_url("fe80::1", 8000) == "http://[fe80::1]:8000/play"
    own = {ip.ip for a in ifaddr.get_adapters() for ip in a.ips if isinstance(ip.ip, str)}
    chosen = lan_address("0.0.0.0")
    # One of this machine's own IPv4 addresses, not loopback unless it has no other.
    assert chosen in own | {"127.0.0.1"}
    assert not chosen.startswith("127.") or own <= {"127.0.0.1"}
