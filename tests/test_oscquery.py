"""OSCQuery: the namespace a real server serves over HTTP, checked against the address declaration
and the proposal's attributes; the HTTP service's bounds, on real sockets."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from timbrespace.config import ConfigError, from_dict
from timbrespace.protocol.addresses import ADDRESSES
from timbrespace.protocol.declaration import Address
from timbrespace.protocol.oscquery.namespace import Namespace, access, type_tags
from timbrespace.protocol.oscquery.service import HostInfo, HttpLimits, OscQueryService

from conftest import ServerProc, TcpOscClient, start_server

HTTP = re.compile(r" http://(?P<host>[^:/ ]+):(?P<port>\d+)/ ")
#: The engines a test server runs (tests/test_server_zeroconf.py checks the same).
ENGINES = ("patch", "timbre")
#: JSON types a VALUE entry of each OSC type tag may be.
JSON_TYPES: dict[str, tuple[type, ...]] = {"i": (int,), "f": (float, int), "s": (str,)}


def _ready(server: ServerProc) -> str:
    return next(line for line in server.lines if " ready: udp://" in line)


def _base(server: ServerProc) -> str:
    m = HTTP.search(_ready(server))
    assert m, _ready(server)
    return f"http://{m['host']}:{m['port']}"


def _get(url: str) -> tuple[int, Any]:
    """(status, decoded JSON or None) of a GET."""
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            body = r.read()
            assert r.headers.get_content_type() == "application/json" or not body
            return r.status, json.loads(body) if body else None
    except urllib.error.HTTPError as e:
        return e.code, None


def _nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
    out = [node]
    for child in node.get("CONTENTS", {}).values():
        out += _nodes(child)
    return out


def _by_path(root: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n["FULL_PATH"]: n for n in _nodes(root)}


def _expected_range(decl: Address) -> list[Any] | None:
    out: list[Any] = []
    for a in decl.args:
        if a.choices:
            out.append({"VALS": list(a.choices)})
        elif a.lo is None and a.hi is None:
            out.append(None)
        else:
            out.append({k: v for k, v in (("MIN", a.lo), ("MAX", a.hi)) if v is not None})
    return out if any(r is not None for r in out) else None


def _check_node(node: dict[str, Any], path: str) -> None:
    """The proposal's rules for one node (and, recursively, its children)."""
    assert node["FULL_PATH"] == path
    assert isinstance(node.get("DESCRIPTION", ""), str)
    assert node.get("ACCESS", 0) in (0, 1, 2, 3)
    tags = node.get("TYPE")
    if tags is not None:
        assert isinstance(tags, str) and set(tags) <= set(JSON_TYPES), tags
        if "RANGE" in node:
            assert len(node["RANGE"]) == len(tags)
            for r in node["RANGE"]:
                assert r is None or (set(r) <= {"MIN", "MAX", "VALS"} and r)
    if "VALUE" in node:
        assert tags is not None and node["ACCESS"] & 1, path  # a value is served only where it can be read
        assert len(node["VALUE"]) == len(tags)
        for v, t in zip(node["VALUE"], tags):
            assert isinstance(v, JSON_TYPES[t]) and not isinstance(v, bool), (path, v, t)
    for name, child in node.get("CONTENTS", {}).items():
        assert "/" not in name and name
        _check_node(child, path.rstrip("/") + "/" + name)


# -- the real server ---------------------------------------------------------------------------------
def test_namespace_holds_every_declared_address_with_its_types_and_ranges(server: ServerProc) -> None:
    status, root = _get(_base(server) + "/")
    assert status == 200
    nodes = _by_path(root)
    for decl in ADDRESSES:
        assert decl.engine is None or decl.engine in ENGINES
        n = nodes[decl.path]
        assert n["DESCRIPTION"].startswith(decl.doc)
        assert n["ACCESS"] == access(decl)
        assert n.get("TYPE", "") == "".join({"int": "i", "float": "f", "str": "s", "ref": "s"}[a.kind]
                                             for a in decl.args)
        assert n.get("RANGE") == _expected_range(decl), decl.path
        # Each layer holds its own copy of every address the router takes under /layer/N/.
        for layer in range(4):
            assert (f"/layer/{layer}{decl.path}" in nodes) == (decl.scope == "layer")
    assert nodes["/patch"]["CONTENTS"].keys() == {"load", "save", "list"}
    assert nodes["/latent"]["RANGE"] == [{"MIN": 0.0, "MAX": 1.0}, {"MIN": 0.0, "MAX": 1.0}]
    assert nodes["/engine"]["RANGE"] == [{"VALS": list(ENGINES)}]
    assert nodes["/note"]["RANGE"] == [{"MIN": 0, "MAX": 127}, {"MIN": 0, "MAX": 127}]
    # /layer is a method (/layer INDEX) and the container of the layers at once.
    assert nodes["/layer"]["TYPE"] == "i" and set(nodes["/layer"]["CONTENTS"]) == {"0", "1", "2", "3"}


def test_every_node_follows_the_proposal(server: ServerProc) -> None:
    status, root = _get(_base(server) + "/")
    assert status == 200
    _check_node(root, "/")
    # A sub-tree is the same node as in the whole tree, values aside.
    status, patch = _get(_base(server) + "/patch")
    assert status == 200 and patch == _by_path(root)["/patch"]


def _value_until(url: str, want: list[float], timeout: float = 10.0) -> list[float]:
    """The VALUE at ``url``, polled until it is ``want`` (within 1e-6) or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        status, body = _get(url)
        assert status == 200
        got = body["VALUE"]
        if got == pytest.approx(want, abs=1e-6) or time.monotonic() > deadline:
            return got


def test_value_follows_what_clients_send_over_osc(server: ServerProc) -> None:
    base = _base(server)
    with server.client() as c:
        c.send("/latent", 0.25, 0.625)
        c.send("/layer/2/latent", 0.125, 0.875)
        c.send("/layer/3/source", 0)
        c.send("/layer/3/target", 1)
        c.send("/layer/3/alpha", 0.375)
        c.sync()
    assert _value_until(base + "/latent?VALUE", [0.25, 0.625]) == pytest.approx([0.25, 0.625], abs=1e-6)
    assert _value_until(base + "/layer/2/latent?VALUE", [0.125, 0.875]) == pytest.approx([0.125, 0.875], abs=1e-6)
    assert _value_until(base + "/layer/3/alpha?VALUE", [0.375]) == pytest.approx([0.375], abs=1e-6)
    # A preset is reported by name (TYPE s), which /source takes back as it is.
    status, source = _get(base + "/layer/3/source?VALUE")
    assert status == 200 and isinstance(source["VALUE"][0], str) and source["VALUE"][0]
    # The top level is layer 0's, and the whole tree carries the same live values.
    status, root = _get(base + "/")
    assert status == 200
    nodes = _by_path(root)
    assert nodes["/latent"]["VALUE"] == nodes["/layer/0/latent"]["VALUE"] == pytest.approx([0.25, 0.625], abs=1e-6)
    assert nodes["/layer/2/latent"]["VALUE"] == pytest.approx([0.125, 0.875], abs=1e-6)
    assert nodes["/engine"]["VALUE"][0] in ENGINES


def test_single_attributes_and_the_proposals_errors(server: ServerProc) -> None:
    base = _base(server)
    assert _get(base + "/latent?TYPE") == (200, {"TYPE": "ff"})
    assert _get(base + "/latent?ACCESS") == (200, {"ACCESS": 3})
    assert _get(base + "/layer/1/latent/?FULL_PATH") == (200, {"FULL_PATH": "/layer/1/latent"})
    status, body = _get(base + "/latent?VALUE")
    assert status == 200 and list(body) == ["VALUE"] and len(body["VALUE"]) == 2
    assert _get(base + "/no/such/node")[0] == 404
    assert _get(base + "/layer/99/latent")[0] == 404  # the test server runs 4 layers
    assert _get(base + "/latent?NO_SUCH_ATTRIBUTE")[0] == 400
    assert _get(base + "/note?VALUE") == (204, None)  # write only: no value to give
    assert _get(base + "/status?TYPE") == (204, None)  # no arguments: no type


def test_host_info_says_where_osc_goes(server: ServerProc) -> None:
    status, info = _get(_base(server) + "/?HOST_INFO")
    assert status == 200
    assert info["NAME"] == f"Timbrespace on {socket.gethostname()}"
    assert info["OSC_PORT"] == server.port and info["OSC_TRANSPORT"] == "UDP"
    ext = info["EXTENSIONS"]
    assert all(isinstance(v, bool) for v in ext.values())
    assert all(ext[k] for k in ("TYPE", "ACCESS", "VALUE", "RANGE", "DESCRIPTION"))
    assert ext["LISTEN"] is True and ext["PATH_CHANGED"] is False  # the namespace never changes
    assert _base(server).endswith(f":{info['WS_PORT']}")


def _without_values(node: dict[str, Any]) -> dict[str, Any]:
    """``node`` and everything under it, less the live VALUEs."""
    out = {k: v for k, v in node.items() if k not in ("VALUE", "CONTENTS")}
    if "CONTENTS" in node:
        out["CONTENTS"] = {name: _without_values(c) for name, c in node["CONTENTS"].items()}
    return out


def test_nothing_but_values_changes_while_the_server_runs(tmp_path: Path) -> None:
    """HOST_INFO says PATH_CHANGED false: the namespace is the declaration, the engines and the layers,
    all fixed at start. A saved user preset, an engine switched and fingers down change values only
    (a preset or an instrument is a name with no RANGE to grow: the ``ref`` arguments have no VALS)."""
    s = start_server(tmp_path)
    try:
        base = _base(s)
        _, before = _get(base + "/")
        assert "RANGE" not in before["CONTENTS"]["source"]  # a name: no VALS a saved preset would add to
        with TcpOscClient(s.host, s.port) as c:
            c.request("/patch/save", "namespace check")
            c.send("/layer/3/engine", "timbre")
            c.send("/touch", 0, 0.25, 0.75)
            c.sync()
            _, after = _get(base + "/")
        assert _without_values(after) == _without_values(before)
        assert after != before  # what did change is there, as values (layer 3's engine, the point)
    finally:
        s.stop()


def test_an_independent_client_reads_host_info_and_values(server: ServerProc) -> None:
    """python-oscquery's client (requests and its own JSON parsing) against the real server.

    Its node parser takes only containers and methods that carry a VALUE (it raises on a write-only
    method, which the proposal allows and /note is), so it reads the readable nodes one by one.
    """
    from pythonoscquery.osc_query_client import OSCQueryClient
    from zeroconf import ServiceInfo

    port = int(_base(server).rsplit(":", 1)[1])
    info = ServiceInfo("_oscjson._tcp.local.", "test._oscjson._tcp.local.", port=port,
                       addresses=[socket.inet_aton("127.0.0.1")])
    client = OSCQueryClient(info)
    host = client.get_host_info()
    assert host is not None and host.osc_port == server.port and host.osc_transport == "UDP"
    assert host.osc_ip == "127.0.0.1"  # left out by the server: the HTTP server's own address
    with server.client() as c:
        c.send("/latent", 0.75, 0.5)
        c.sync()
    _value_until(_base(server) + "/latent?VALUE", [0.75, 0.5])
    node = client.query_node("/latent")
    assert node is not None and node.full_path == "/latent" and node.value == pytest.approx([0.75, 0.5], abs=1e-6)
    assert node.type == [float, float]
    engine = client.query_node("/layer/1/engine")
    assert engine is not None and engine.value[0] in ENGINES
    assert client.query_node("/no/such/node") is None  # its reading of a 404


def test_oscquery_off_serves_no_http(tmp_path: Path) -> None:
    s = start_server(tmp_path, network={"oscquery": False})
    try:
        assert " http://" not in _ready(s)
    finally:
        assert s.stop() == 0


def test_config_names_a_clash_between_the_osc_and_http_ports() -> None:
    # On by default, on the port after OSC's (the 57131).
    default = from_dict({}).network
    assert default.oscquery and (default.port, default.http_port) == (57130, 57131)
    with pytest.raises(ConfigError, match=r"network.http_port = 9000 is network.port's number"):
        from_dict({"network": {"port": 9000, "http_port": 9000}})
    from_dict({"network": {"port": 9000, "http_port": 9000, "oscquery": False}})
    with pytest.raises(ConfigError, match=r"network.http_port = 70000 is out of range \[0, 65535\]"):
        from_dict({"network": {"http_port": 70000}})


# -- the HTTP service alone, on real sockets ------------------------------------------------------------
def _service(**kw: Any) -> OscQueryService:
    ns = Namespace(("patch",), 2, lambda layer: {("/latent",): ("/latent", (0.5, float(layer)))})
    return OscQueryService(ns, HostInfo("test", 9), host="127.0.0.1", port=0, **kw)


async def _request(port: int, path: str = "/") -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    """A keep-alive connection after one GET: (reader, writer, the status line or b'' if closed)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10) if not reader.at_eof() else b""
    return reader, writer, head.split(b"\r\n", 1)[0]


async def _closed_at_once(port: int) -> bool:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
        return await asyncio.wait_for(reader.read(), 10) == b""
    except ConnectionError:
        return True
    finally:
        writer.close()


def test_service_bounds_connections_in_all_and_per_host() -> None:
    async def open_until(svc: OscQueryService, n: int) -> None:
        """Wait (bounded) until the service has taken ``n`` connections: accepting runs on the loop."""
        for _ in range(1000):
            if svc.open_connections() == n:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"{svc.open_connections()} connections open, expected {n}")

    async def run() -> None:
        svc = _service(limits=HttpLimits(max_connections=3, per_host=1))
        await svc.start()
        try:
            port = svc.address[1]
            _, w1, head = await _request(port, "/latent?VALUE")
            assert head == b"HTTP/1.1 200 OK"
            _, w2, head = await _request(port)  # a second connection from the same host
            assert head.startswith(b"HTTP/1.1 503")
            w2.close()
            await open_until(svc, 1)
            idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
            await open_until(svc, 3)
            assert await _closed_at_once(port)  # a fourth is over max_connections
            assert svc.refused == 2
            for w in (w1, *(w for _, w in idle)):
                w.close()
        finally:
            await svc.stop()

    asyncio.run(run())


def test_service_refuses_hosts_outside_allow_and_unserved_methods() -> None:
    async def run() -> None:
        svc = _service(allow=lambda host: False)
        await svc.start()
        try:
            _, w, head = await _request(svc.address[1])
            assert head.startswith(b"HTTP/1.1 403")
            w.close()
        finally:
            await svc.stop()
        svc = _service()
        await svc.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", svc.address[1])
            writer.write(b"POST /latent HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nabcd")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n"), 10)
            assert head.startswith(b"HTTP/1.1 405")
            writer.close()
        finally:
            await svc.stop()

    asyncio.run(run())


def test_namespace_leaves_out_an_engine_the_server_does_not_run() -> None:
    ns = Namespace(("patch",), 1, lambda layer: {})
    paths = set(ns.paths())
    for decl in ADDRESSES:
        assert (decl.path in paths) == (decl.engine in (None, "patch")), decl.path
    assert type_tags(next(a for a in ADDRESSES if a.path == "/source")) == "s"
    # Rendering is JSON all the way down (no NaN, no tuples that would not round-trip).
    json.loads(json.dumps(ns.render(ns.root), allow_nan=False))
