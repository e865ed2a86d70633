"""Zeroconf (mDNS/DNS-SD) advertisement of the OSC server, and browsing for servers.

The server is advertised twice under one instance name, as ``_osc._udp.local.`` and
``_osc._tcp.local.``; the TCP record's TXT adds ``framing`` (``slip`` or ``length``) and the
UDP record carries no ``framing`` key. With OSCQuery on, a third record,
``_oscjson._tcp.local.``, gives the HTTP port under the same name (TXT: ``txtvers`` only; the
rest is in ``?HOST_INFO``).  A name already taken is renamed (``Name-2``,
``Name-3``, ... as python-zeroconf does) and :attr:`Advertiser.name` gives the final name.

Clash detection is done twice: first a legacy-unicast PTR query (:func:`names_in_use`), then
python-zeroconf's own probing with ``allow_name_change``.  Probing alone misses clashes with a
responder on the same host (the usual case in tests, and with avahi beside us): the defender
unicasts its answer to port 5353, and the kernel hands such a datagram to only one of the
sockets bound there, often not ours.  The browser asks QM (multicast-answer) questions for the
same reason.  ``interfaces`` is ``"all"`` or a list of IPv4 addresses (``["127.0.0.1"]`` keeps
all mDNS traffic on loopback, as the tests do).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import ifaddr
from zeroconf import DNSQuestionType, InterfaceChoice, IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

__all__ = ["OSC_JSON", "OSC_TCP", "OSC_UDP", "Advertiser", "Browser", "Found", "browse", "names_in_use"]

log = logging.getLogger(__name__)

OSC_UDP = "_osc._udp.local."
OSC_TCP = "_osc._tcp.local."
#: OSCQuery's service type (the Vidvox proposal): the HTTP server that describes the namespace.
OSC_JSON = "_oscjson._tcp.local."
Protocol = Literal["udp", "tcp", "oscjson"]
_TYPES: dict[Protocol, str] = {"udp": OSC_UDP, "tcp": OSC_TCP, "oscjson": OSC_JSON}
Interfaces = Literal["all"] | list[str]


def _zc_interfaces(interfaces: Interfaces) -> InterfaceChoice | list[str]:
    if interfaces == "all":
        return InterfaceChoice.All
    if not interfaces or not isinstance(interfaces, list):
        raise ValueError(f"interfaces must be 'all' or a non-empty list of IP addresses, not {interfaces!r}")
    return list(interfaces)


def _host_addresses(interfaces: Interfaces) -> list[str]:
    """IPv4 addresses to publish: the given ones, or every non-loopback one (loopback if none)."""
    if interfaces != "all":
        return list(interfaces)
    found = [
        str(ip.ip)
        for adapter in ifaddr.get_adapters()
        for ip in adapter.ips
        if ip.is_IPv4 and not str(ip.ip).startswith("127.")
    ]
    return sorted(set(found)) or ["127.0.0.1"]


def _free_name(wanted: str, taken: set[str]) -> str:
    """``wanted``, or ``wanted-2``, ``wanted-3``... (zeroconf's scheme), avoiding ``taken``."""
    lower = {t.lower() for t in taken}
    name, n = wanted, 2
    while name.lower() in lower:
        name, n = f"{wanted}-{n}", n + 1
    return name


async def names_in_use(
    addresses: list[str], types: tuple[str, ...] = (OSC_UDP, OSC_TCP), timeout: float = 0.3
) -> set[str]:
    """Instance names of ``types`` that responders reachable from ``addresses`` answer for.

    Sends one legacy-unicast PTR query (RFC 6762 section 6.7: from an ephemeral port) per local
    address and collects the answers for ``timeout`` seconds; responders answer such a query
    at once, by unicast, to the querying socket.
    """
    loop = asyncio.get_running_loop()
    query = _dns_query(types)
    socks: list[socket.socket] = []
    try:
        for addr in addresses:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            socks.append(sock)
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(addr))
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
            sock.bind((addr, 0))
            sock.sendto(query, (_MDNS_GROUP, 5353))
        replies = await asyncio.gather(*(_collect(loop, s, loop.time() + timeout) for s in socks))
    except OSError as exc:
        log.warning("zeroconf name query failed: %s", exc)
        return set()
    finally:
        for sock in socks:
            sock.close()
    wanted = {t.lower() for t in types}
    names: set[str] = set()
    for packets in replies:
        for packet in packets:
            for owner, alias in _ptr_records(packet):
                if owner.lower() in wanted and alias.lower().endswith("." + owner.lower()):
                    names.add(alias[: -len(owner) - 1])
    return names


async def _collect(loop: asyncio.AbstractEventLoop, sock: socket.socket, deadline: float) -> list[bytes]:
    out: list[bytes] = []
    while (left := deadline - loop.time()) > 0:
        try:
            data, _ = await asyncio.wait_for(loop.sock_recvfrom(sock, 9000), left)
        except TimeoutError:
            break
        out.append(data)
    return out


_MDNS_GROUP = "224.0.0.251"


def _dns_query(types: tuple[str, ...]) -> bytes:
    """A DNS query (id 0x5453, no QU bit) with one PTR/IN question per type."""
    out = bytearray(struct.pack(">6H", 0x5453, 0, len(types), 0, 0, 0))
    for t in types:
        for label in t.rstrip(".").split("."):
            raw = label.encode()
            out += bytes([len(raw)]) + raw
        out += b"\x00" + struct.pack(">HH", 12, 1)
    return bytes(out)


def _read_name(msg: bytes, off: int) -> tuple[str, int]:
    """A (possibly compressed) domain name at ``off``; returns (name with trailing dot, next offset)."""
    labels: list[str] = []
    end = -1
    for _ in range(128):
        n = msg[off]
        if n == 0:
            return ".".join(labels) + ".", end if end >= 0 else off + 1
        if n & 0xC0 == 0xC0:
            if end < 0:
                end = off + 2
            off = ((n & 0x3F) << 8) | msg[off + 1]
            continue
        labels.append(msg[off + 1 : off + 1 + n].decode("utf-8", "replace"))
        off += 1 + n
    raise ValueError("DNS name too long or looping")


def _ptr_records(msg: bytes) -> list[tuple[str, str]]:
    """(owner, target) of every PTR record in a DNS response; [] if it does not parse."""
    try:
        _, flags, qd, an, ns, ar = struct.unpack_from(">6H", msg)
        if not flags & 0x8000:
            return []  # a query, not a response
        off = 12
        for _ in range(qd):
            off = _read_name(msg, off)[1] + 4
        out = []
        for _ in range(an + ns + ar):
            owner, off = _read_name(msg, off)
            rtype, _cls, _ttl, rdlen = struct.unpack_from(">HHIH", msg, off)
            off += 10
            if rtype == 12:
                out.append((owner, _read_name(msg, off)[0]))
            off += rdlen
        return out
    except (IndexError, ValueError, struct.error):
        return []


def _instance(full_name: str, type_: str) -> str:
    return full_name[: -len(type_) - 1] if full_name.endswith("." + type_) else full_name


class Advertiser:
    """Advertise one OSC server (UDP and TCP on ``port``, OSCQuery on ``http_port``) until :meth:`stop`."""

    def __init__(
        self,
        name: str,
        port: int,
        txt: Mapping[str, str],
        interfaces: Interfaces = "all",
        *,
        tcp_framing: Literal["slip", "length"] = "slip",
        query_time: float = 0.3,
        http_port: int | None = None,
    ) -> None:
        self._wanted = name
        self.http_port = http_port
        self.query_time = query_time
        self.port = port
        _zc_interfaces(interfaces)  # validate early
        self.interfaces = interfaces
        self._udp_txt = {k: v for k, v in txt.items() if k != "framing"}
        self._tcp_txt = {**self._udp_txt, "framing": txt.get("framing", tcp_framing)}
        self._zc: AsyncZeroconf | None = None
        self._infos: list[AsyncServiceInfo] = []

    @property
    def name(self) -> str:
        """The instance name as registered (after any rename), or the wanted one before start."""
        return _instance(self._infos[0].name, OSC_UDP) if self._infos else self._wanted

    @property
    def names(self) -> dict[str, str]:
        """Registered instance name per protocol (the same unless a clash hit only one)."""
        return {p: _instance(i.name, t) for i in self._infos for p, t in _TYPES.items() if i.type == t}

    async def start(self) -> None:
        """Pick a free name, probe (renaming on a clash), and announce both services."""
        if self._zc is not None:
            return
        addresses = _host_addresses(self.interfaces)
        # Probing alone misses a clash with another responder on this host: the answer to our
        # QU probe is unicast to port 5353, which the kernel hands to only one of the sockets
        # bound there.  A legacy unicast query from our own port is answered to us directly.
        types = (OSC_UDP, OSC_TCP) if self.http_port is None else (OSC_UDP, OSC_TCP, OSC_JSON)
        taken = await names_in_use(addresses, types, timeout=self.query_time)
        name = _free_name(self._wanted, taken)
        self._zc = AsyncZeroconf(interfaces=_zc_interfaces(self.interfaces), ip_version=IPVersion.V4Only)
        server = f"{socket.gethostname().split('.')[0]}.local."
        services = [(OSC_UDP, self.port, self._udp_txt), (OSC_TCP, self.port, self._tcp_txt)]
        if self.http_port is not None:
            services.append((OSC_JSON, self.http_port, {"txtvers": "1"}))
        infos = [
            AsyncServiceInfo(
                type_,
                f"{name}.{type_}",
                port=port,
                properties=txt,
                server=server,
                parsed_addresses=addresses,
            )
            for type_, port, txt in services
        ]
        try:
            announced = await asyncio.gather(
                *(self._zc.async_register_service(i, allow_name_change=True) for i in infos)
            )
            await asyncio.gather(*announced)
        except BaseException:
            await self._zc.async_close()
            self._zc = None
            raise
        self._infos = infos
        if len(set(self.names.values())) > 1:
            log.warning("zeroconf names differ between protocols: %s", self.names)
        if self.name != self._wanted:
            log.warning("zeroconf name %r is taken; advertising as %r", self._wanted, self.name)
        log.info(
            "advertising %r on %s port %d, TXT %s", self.name, ", ".join(addresses), self.port, self._tcp_txt
        )

    async def stop(self) -> None:
        """Withdraw every service (goodbye packets) and close zeroconf."""
        zc, self._zc = self._zc, None
        if zc is None:
            return
        try:
            goodbyes = [await zc.async_unregister_service(i) for i in self._infos]
            await asyncio.gather(*goodbyes)
        finally:
            self._infos = []
            await zc.async_close()


@dataclass(frozen=True)
class Found:
    """One advertised OSC service, resolved."""

    name: str
    host: str
    port: int
    protocol: Protocol
    txt: dict[str, str] = field(hash=False)
    server: str = ""
    addresses: tuple[str, ...] = ()


class Browser:
    """Watch ``_osc._udp`` / ``_osc._tcp`` (and on request ``_oscjson._tcp``) services; :attr:`found` is
    kept current (async context manager)."""

    def __init__(
        self, interfaces: Interfaces = "all", protocols: tuple[Protocol, ...] = ("udp", "tcp")
    ) -> None:
        _zc_interfaces(interfaces)  # validate early
        self.interfaces = interfaces
        self.protocols = protocols
        self.found: dict[tuple[str, str], Found] = {}  # (protocol, name) -> Found
        self._zc: AsyncZeroconf | None = None
        self._browser: AsyncServiceBrowser | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Event()

    async def __aenter__(self) -> Browser:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start browsing."""
        self._zc = AsyncZeroconf(interfaces=_zc_interfaces(self.interfaces), ip_version=IPVersion.V4Only)
        # QM questions: a QU answer is unicast to port 5353, which reaches only one of the
        # sockets bound there when several mDNS stacks share this host.
        self._browser = AsyncServiceBrowser(
            self._zc.zeroconf,
            [_TYPES[p] for p in self.protocols],
            handlers=[self._on_change],
            question_type=DNSQuestionType.QM,
        )

    async def stop(self) -> None:
        """Stop browsing and close zeroconf."""
        for t in list(self._tasks):
            t.cancel()
        if self._browser is not None:
            await self._browser.async_cancel()
            self._browser = None
        if self._zc is not None:
            await self._zc.async_close()
            self._zc = None

    def _on_change(
        self, zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        protocol = next((p for p, t in _TYPES.items() if t == service_type), "tcp")
        key = (protocol, _instance(name, service_type))
        if state_change is ServiceStateChange.Removed:
            if self.found.pop(key, None) is not None:
                self._notify()
            return
        task = asyncio.get_running_loop().create_task(self._resolve(zeroconf, service_type, name, key))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _resolve(self, zc: Zeroconf, type_: str, name: str, key: tuple[str, str]) -> None:
        info = AsyncServiceInfo(type_, name)
        if not await info.async_request(zc, 3000) or info.port is None:
            log.debug("could not resolve %s", name)
            return
        addresses = tuple(info.parsed_addresses(IPVersion.V4Only)) or tuple(info.parsed_addresses())
        txt = {k: v or "" for k, v in info.decoded_properties.items()}
        proto: Protocol = next((p for p in _TYPES if p == key[0]), "tcp")
        host = addresses[0] if addresses else (info.server or "")
        self.found[key] = Found(key[1], host, info.port, proto, txt, info.server or "", addresses)
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_for(
        self, predicate: Callable[[dict[tuple[str, str], Found]], Any], timeout: float
    ) -> bool:
        """Wait until ``predicate(found)`` is true; False on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate(self.found):
            left = deadline - loop.time()
            if left <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)
        return True


async def browse(
    timeout: float = 2.0,
    interfaces: Interfaces = "all",
    protocols: tuple[Protocol, ...] = ("udp", "tcp"),
) -> list[Found]:
    """Browse for ``timeout`` seconds and return the services found, sorted by name then protocol."""
    async with Browser(interfaces, protocols) as b:
        await asyncio.sleep(timeout)
        if b._tasks:  # let resolutions that started in time finish
            await asyncio.wait(b._tasks, timeout=1.0)
        return sorted(b.found.values(), key=lambda f: (f.name, f.protocol))
