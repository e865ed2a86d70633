"""The real server advertises itself with zeroconf, a client finds it, and shutdown withdraws it."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import uuid
from pathlib import Path

from timbrespace.protocol.discovery import browse

from conftest import start_server


def _find(name: str) -> list:
    found = asyncio.run(browse(2.0, interfaces=["127.0.0.1"], protocols=("udp", "tcp", "oscjson")))
    return [f for f in found if f.name == name]


def test_advertised_found_used_and_withdrawn(tmp_path: Path) -> None:
    name = f"Timbrespace test {uuid.uuid4().hex[:8]}"
    s = start_server(tmp_path, network={"zeroconf": True, "name": name, "interfaces": ["127.0.0.1"]})
    try:
        assert f"zeroconf '{name}'" in s.lines[-1]
        found = {f.protocol: f for f in _find(name)}
        assert set(found) == {"udp", "tcp", "oscjson"}
        # OSCQuery's record gives the HTTP port of the ready line, under the same name.
        http = re.search(r" http://[^:/ ]+:(\d+)/ ", s.lines[-1])
        assert http and found.pop("oscjson").port == int(http[1])
        for f in found.values():
            assert f.port == s.port
            assert f.txt["txtvers"] == "1" and f.txt["version"] == "1.1"
            assert f.txt["engines"].split(",") == ["patch", "timbre"] and f.txt["api"]
        assert found["tcp"].txt["framing"] == "slip"
        # The client finds the server by itself when no host is given.
        out = subprocess.run([sys.executable, "-m", "timbrespace", "send", "/version"],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert out.stdout.startswith("/version.reply 'timbrespace'")
    finally:
        assert s.stop() == 0
    assert _find(name) == []
