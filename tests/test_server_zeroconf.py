"""The real server advertises itself with zeroconf, a client finds it, and shutdown withdraws it."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pythonoscquery.osc_query_browser import OSCQueryListener
from pythonoscquery.osc_query_client import OSCQueryClient
from zeroconf import ServiceBrowser, Zeroconf

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
        # An independent OSCQuery browser finds the _oscjson._tcp record (python-oscquery's listener
        # on python-zeroconf's own browser), and python-oscquery's client reads the server from it.
        listener = OSCQueryListener()
        zc = Zeroconf(interfaces=["127.0.0.1"])  # where the test server advertises
        ServiceBrowser(zc, ["_oscjson._tcp.local.", "_osc._udp.local."], listener)
        try:
            key = f"{name}._oscjson._tcp.local."
            svc = _until(lambda: listener.oscjson_services.get(key), f"python-oscquery never found {key!r}")
            assert svc.port == int(http[1]) and f"{name}._osc._udp.local." in listener.osc_services
            client = OSCQueryClient(svc)
            host = client.get_host_info()
            assert host is not None and host.name == name and host.osc_port == s.port
            node = client.query_node("/layer/0/latent")
            assert node is not None and node.full_path == "/layer/0/latent" and len(node.value) == 2
            assert s.stop() == 0
            _until(lambda: key not in listener.oscjson_services, "python-oscquery still lists the stopped server")
        finally:
            zc.close()
    finally:
        assert s.stop() == 0
    assert _find(name) == []


def _until(get: Callable[[], Any], what: str, timeout: float = 10.0) -> Any:
    """``get()`` polled until it is truthy; AssertionError saying ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not (got := get()):
        if time.monotonic() > deadline:
            raise AssertionError(what)
        time.sleep(0.1)
    return got
