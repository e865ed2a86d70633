"""OSCQuery over HTTP (aiohttp, on the server's event loop): the namespace, single attributes, HOST_INFO,
and the WebSocket upgrade on any path (served by :mod:`.listen`).

``GET /path`` answers the node at ``path`` and everything under it as JSON; ``GET /path?VALUE``
answers ``{"VALUE": [...]}`` alone; ``GET /?HOST_INFO`` says where the OSC server listens. As the
proposal says: a path with no node is a 404, an attribute this server does not know a 400, one the
node lacks (the VALUE of a write-only method) a 204 with no body.

Handlers only read the prepared tree and each layer's state, so a request costs the loop a
small, bounded amount of work. Everything a client can make the server hold is bounded: the
connections open at once (``network.max_connections``; more are closed at once), per host
(``network.max_connections_per_host``: a 503 beyond), a request line and headers (4 KiB each),
a body (1 KiB: only GETs are served), an idle keep-alive connection (15 s). Hosts outside
``sessions.allow`` get a 403.

With a page (``page``: a folder of static files) the same server serves the web instrument: ``GET
/play`` its HTML, ``/play/<file>`` its scripts and styles, ``/play/items.json`` what ``items``
returns (names the namespace cannot give, such as the timbre engine's instruments).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from .listen import Hub
from .namespace import ATTRIBUTES, Namespace

__all__ = ["HostInfo", "HttpLimits", "OscQueryService"]

log = logging.getLogger(__name__)

#: Seconds an idle keep-alive HTTP connection stays open.
KEEPALIVE_S = 15.0
#: Bytes of a request line or one header at most, and of a request body.
MAX_LINE = 4096
MAX_BODY = 1024
#: Seconds a request in flight may take to finish once the server stops.
SHUTDOWN_S = 2.0
#: The page may load its own files and talk to this server only: nothing from another host.
PAGE_POLICY = ("default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; "
               "script-src 'self'; frame-ancestors 'none'")


@dataclass(frozen=True)
class HttpLimits:
    """Bounds on HTTP connections (config ``network.max_connections``, ``max_connections_per_host``)."""

    max_connections: int = 128
    per_host: int = 16


@dataclass
class HostInfo:
    """What ``?HOST_INFO`` answers: the instance name and where OSC is taken."""

    name: str
    osc_port: int
    #: The WebSocket's port (the HTTP port) when it is served: LISTEN is on only then.
    ws_port: int | None = None

    def as_json(self) -> dict[str, Any]:
        """The proposal's HOST_INFO object (OSC_IP left out: the HTTP server's own address)."""
        ext = {name: True for name in ATTRIBUTES if name not in ("FULL_PATH", "CONTENTS")}
        ext.update({"TAGS": False, "EXTENDED_TYPE": False, "UNIT": False, "CRITICAL": False, "CLIPMODE": False,
                    "OVERLOADS": False, "HTML": False, "LISTEN": self.ws_port is not None,
                    # The namespace never changes while the server runs (layers and engines are fixed).
                    "PATH_CHANGED": False,
                    "PATH_RENAMED": False, "PATH_ADDED": False, "PATH_REMOVED": False})
        # UDP: what an OSCQuery client sends by default. TCP (SLIP framing) is taken on the same port.
        out: dict[str, Any] = {"NAME": self.name, "OSC_PORT": self.osc_port, "OSC_TRANSPORT": "UDP", "EXTENSIONS": ext}
        if self.ws_port is not None:
            out["WS_PORT"] = self.ws_port
        return out


class _Refused(asyncio.Protocol):
    """A connection over ``max_connections``: closed at once, before any byte is read."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class OscQueryService:
    """The OSCQuery HTTP server for ``namespace``; :meth:`start` listens, :meth:`stop` closes."""

    def __init__(self, namespace: Namespace, info: HostInfo, *, host: str = "0.0.0.0", port: int = 0,
                 limits: HttpLimits | None = None, allow: Callable[[str], bool] = lambda host: True,
                 websocket: Hub | None = None, page: Path | None = None,
                 items: Callable[[], dict[str, Any]] = dict) -> None:
        self.namespace = namespace
        self.info = info
        self.host = host
        self.port = port
        self.limits = limits or HttpLimits()
        self.allow = allow
        #: Serves a WebSocket upgrade on any path (LISTEN, OSC both ways); None: HTTP only.
        self.websocket = websocket
        #: Connections closed at once (over max_connections) and requests refused (403, 503).
        self.refused = 0
        self.app = web.Application(client_max_size=MAX_BODY, middlewares=[self._gate])
        self.page = page
        self.items = items
        if page is not None:
            self.app.router.add_get("/play", self._play)
            self.app.router.add_get("/play/", self._play)
            self.app.router.add_get("/play/items.json", self._items)
            self.app.router.add_static("/play", page, append_version=False)
        self.app.router.add_get("/{path:.*}", self._get)
        self._runner: web.AppRunner | None = None
        self._server: asyncio.Server | None = None

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) actually listened on (the port chosen when 0 was asked)."""
        assert self._server is not None, "not started"
        host, port = self._server.sockets[0].getsockname()[:2]
        return host, port

    def open_connections(self) -> int:
        """HTTP connections open now."""
        return 0 if self._runner is None or self._runner.server is None else len(self._runner.server.connections)

    async def start(self) -> None:
        """Listen; OSError when the port cannot be bound."""
        runner = web.AppRunner(self.app, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_S,
                               keepalive_timeout=KEEPALIVE_S, max_line_size=MAX_LINE, max_field_size=MAX_LINE)
        await runner.setup()
        assert runner.server is not None
        server = runner.server

        def protocol() -> asyncio.BaseProtocol:
            if len(server.connections) >= self.limits.max_connections:
                self.refused += 1
                return _Refused()
            return server()

        try:
            self._server = await asyncio.get_running_loop().create_server(
                protocol, self.host, self.port, reuse_address=True)
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        if self.websocket is not None:
            self.info.ws_port = self.address[1]

    async def stop(self) -> None:
        """Stop listening and close every connection."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        if self.websocket is not None:
            await self.websocket.close_all()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    @web.middleware
    async def _gate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        host = request.remote or ""
        if not self.allow(host):
            self.refused += 1
            raise web.HTTPForbidden(text=f"{host} is not in sessions.allow\n")
        if self._from(host) > self.limits.per_host:
            self.refused += 1
            raise web.HTTPServiceUnavailable(
                text=f"too many connections from {host} (network.max_connections_per_host = "
                     f"{self.limits.per_host})\n", headers={"Connection": "close"})
        response = await handler(request)
        if not response.prepared:  # a WebSocket's headers are gone already
            response.headers["Access-Control-Allow-Origin"] = "*"  # a page elsewhere may read the namespace
            if request.path.startswith("/play/"):  # the page's files: a new server's, not a stale copy
                response.headers["Cache-Control"] = "no-cache"
        return response

    def _from(self, host: str) -> int:
        """Connections open from ``host`` now."""
        assert self._runner is not None and self._runner.server is not None
        n = 0
        for handler in self._runner.server.connections:
            transport = handler.transport
            peer = transport.get_extra_info("peername") if transport is not None else None
            if peer and peer[0] == host:
                n += 1
        return n

    async def _play(self, request: web.Request) -> web.StreamResponse:
        assert self.page is not None
        if request.path.endswith("/"):  # one address for the page, whichever way it was typed
            raise web.HTTPFound("/play")
        response = web.FileResponse(self.page / "play.html")
        response.headers["Content-Security-Policy"] = PAGE_POLICY
        response.headers["Cache-Control"] = "no-cache"
        return response

    async def _items(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.items())

    async def _get(self, request: web.Request) -> web.StreamResponse:
        if self.websocket is not None and request.headers.get("Upgrade", "").lower() == "websocket":
            return await self.websocket.serve(request)
        query = request.query_string
        if query == "HOST_INFO":
            return web.json_response(self.info.as_json())
        node = self.namespace.find(request.path)
        if node is None:
            raise web.HTTPNotFound(text=f"no OSC container or method at {request.path[:200]!r}\n")
        if not query:
            return web.json_response(self.namespace.render(node))
        if query not in ATTRIBUTES:
            raise web.HTTPBadRequest(text=f"unknown attribute {query[:80]!r}; this server answers "
                                          f"{', '.join(ATTRIBUTES)} and HOST_INFO\n")
        value = self.namespace.attribute(node, query)
        if value is None:
            raise web.HTTPNoContent()
        return web.json_response({query: value})
