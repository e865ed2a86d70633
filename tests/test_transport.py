"""OSC transport over real loopback sockets: UDP, TCP (SLIP and length framing), bundles, liblo."""

from __future__ import annotations

import asyncio
import functools
import select
import shutil
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.tcp_client import SimpleTCPClient

from timbrespace.protocol.codec import IMMEDIATELY, TimeTag
from timbrespace.protocol.encode import encode_bundle, encode_message
from timbrespace.protocol.loadgen import spawn_load
from timbrespace.protocol.transport import Incoming, OscServer, Peer, Reply

Handler = Callable[[Incoming], Iterable[Reply]]


def osc(address: str, *args: Any) -> bytes:
    """A message built by python-osc (types inferred)."""
    b = OscMessageBuilder(address)
    for a in args:
        b.add_arg(a)
    return b.build().dgram


def slip(packet: bytes) -> bytes:
    return b"\xc0" + packet.replace(b"\xdb", b"\xdb\xdd").replace(b"\xc0", b"\xdb\xdc") + b"\xc0"


class ServerThread:
    """An OscServer on its own event loop thread, recording what it receives."""

    def __init__(self, **kw: Any) -> None:
        self.received: list[tuple[Incoming, float]] = []  # (message, time.time() when handled)
        self.malformed: list[tuple[Peer, str]] = []
        self.routes: dict[str, Handler] = {}
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        kw.setdefault("host", "127.0.0.1")
        self.server = OscServer(self._handle, self._on_malformed, port=0, **kw)
        self.call(self.server.start())
        self.port = self.server.udp_address[1]

    def _handle(self, inc: Incoming) -> Iterable[Reply]:
        self.received.append((inc, time.time()))
        route = self.routes.get(inc.address)
        if route is not None:
            return route(inc)
        return [("/echo", (inc.address, *inc.args))]

    def _on_malformed(self, peer: Peer, reason: str) -> Iterable[Reply]:
        self.malformed.append((peer, reason))
        return [("/fail", ("?", reason))]

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def run(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the server's loop and return its result."""

        async def wrap() -> Any:
            return fn()

        return self.call(wrap())

    def close(self) -> None:
        self.call(self.server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def srv() -> Iterator[ServerThread]:
    s = ServerThread()
    yield s
    s.close()


@pytest.fixture
def srv_length() -> Iterator[ServerThread]:
    s = ServerThread(tcp_framing="length")
    yield s
    s.close()


_SOCKETS: list[socket.socket] = []


@pytest.fixture(autouse=True)
def _close_client_sockets() -> Iterator[None]:
    yield
    while _SOCKETS:
        _SOCKETS.pop().close()


class Udp:
    def __init__(self, port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        _SOCKETS.append(self.sock)
        self.sock.settimeout(3)
        self.addr = ("127.0.0.1", port)

    def send(self, data: bytes) -> None:
        self.sock.sendto(data, self.addr)

    def recv(self, timeout: float = 3) -> OscMessage:
        self.sock.settimeout(timeout)
        return OscMessage(self.sock.recv(65536))


class Tcp:
    def __init__(self, port: int, framing: str = "slip") -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=3)
        _SOCKETS.append(self.sock)
        self.framing = framing
        self.buf = b""

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, packet: bytes) -> None:
        self.sock.sendall(slip(packet) if self.framing == "slip" else struct.pack(">i", len(packet)) + packet)

    def recv(self) -> OscMessage:
        while True:
            if self.framing == "slip":
                frames = self.buf.split(b"\xc0")
                done = [f for f in frames[:-1] if f]
                if done:
                    first = done[0]
                    self.buf = self.buf[self.buf.index(first) + len(first) + 1 :]
                    return OscMessage(first.replace(b"\xdb\xdc", b"\xc0").replace(b"\xdb\xdd", b"\xdb"))
            elif len(self.buf) >= 4 and len(self.buf) >= 4 + (n := struct.unpack(">i", self.buf[:4])[0]):
                packet, self.buf = self.buf[4 : 4 + n], self.buf[4 + n :]
                return OscMessage(packet)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk

    def closed(self) -> bool:
        """True once the server has closed the connection (after any replies still buffered)."""
        try:
            while chunk := self.sock.recv(65536):
                self.buf += chunk
        except TimeoutError:
            return False
        return True


def wait_for(cond: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


# --------------------------------------------------------------------------- UDP


def test_udp_echo_and_shared_port(srv: ServerThread) -> None:
    assert srv.server.udp_address == srv.server.tcp_address and srv.port > 0
    c = Udp(srv.port)
    c.send(osc("/hello", 1, 2.5, "x", b"\x00\x01", True, None, 2**40))
    r = c.recv()
    assert (r.address, r.params) == ("/echo", ["/hello", 1, 2.5, "x", b"\x00\x01", True, None, 2**40])
    inc = srv.received[0][0]
    assert inc.peer.protocol == "udp" and inc.peer.host == "127.0.0.1"
    assert inc.peer.port == c.sock.getsockname()[1] and inc.tags == "ifsbTNh"
    assert inc.arrival <= time.monotonic()
    wait_for(lambda: srv.server.stats.packets_received == 1)  # counters are added up per batch
    assert srv.server.stats.bytes_received == len(osc("/hello", 1, 2.5, "x", b"\x00\x01", True, None, 2**40))


def test_udp_60k_datagram(srv: ServerThread) -> None:
    srv.routes["/big"] = lambda inc: [("/big.reply", (len(inc.args[0]), inc.args[0][-4:]))]  # type: ignore[arg-type, index]
    blob = bytes(range(256)) * 240  # 61,440 bytes
    c = Udp(srv.port)
    c.send(osc("/big", blob))
    r = c.recv()
    assert r.params == [len(blob), blob[-4:]]


def test_udp_malformed_then_still_answers(srv: ServerThread) -> None:
    c = Udp(srv.port)
    c.send(b"/bad\x00\x00\x00\x00,i\x00\x00")  # truncated int
    r = c.recv()
    assert r.address == "/fail" and "argument 0 ('i') truncated" in r.params[1]
    assert srv.malformed[0][1] == r.params[1] and srv.server.stats.malformed == 1
    c.send(osc("/ok", 1))
    assert c.recv().params == ["/ok", 1]


def test_handler_exception_is_reported_and_survived(srv: ServerThread) -> None:
    def boom(inc: Incoming) -> Iterable[Reply]:
        raise RuntimeError("kaboom")

    srv.routes["/boom"] = boom
    srv.routes["/badreply"] = lambda inc: [("/r", (object(),))]
    c = Udp(srv.port)
    c.send(osc("/boom"))
    r = c.recv()
    assert r.address == "/fail" and r.params[1] == "internal error handling /boom: RuntimeError: kaboom"
    c.send(osc("/badreply"))
    assert c.recv().params[1].startswith("reply not encodable handling /badreply")
    c.send(osc("/ok"))
    assert c.recv().params == ["/ok"]
    assert srv.server.stats.handler_errors == 2


def test_burst_of_udp_requests_all_answered(srv: ServerThread) -> None:
    c = Udp(srv.port)
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    n = 3000
    for i in range(n):
        c.send(osc("/n", i))
    got = [c.recv().params[1] for _ in range(n)]
    assert got == list(range(n))


def test_replies_keep_order_across_sends_and_failures(srv: ServerThread) -> None:
    """Replies of one receive batch go out in groups; their order must not change."""

    def push(inc: Incoming) -> Iterable[Reply]:
        srv.server.send(inc.peer, "/pushed", (inc.args[0],))  # an async message from inside a handler
        return [("/echo", ("/push", inc.args[0]))]

    srv.routes["/push"] = push
    c = Udp(srv.port)
    for i in range(40):
        c.send(osc("/push", i) if i % 3 else b"/bad\x00\x00\x00\x00,i\x00\x00")
    got = [c.recv() for _ in range(2 * 26 + 14)]
    want: list[tuple[str, list[Any]]] = []
    for i in range(40):
        want += [("/pushed", [i]), ("/echo", ["/push", i])] if i % 3 else [("/fail", ["?"])]
    assert [(m.address, m.params[:1] if m.address == "/fail" else m.params) for m in got] == want


# --------------------------------------------------------------------------- bundles


def test_bundle_messages_in_order(srv: ServerThread) -> None:
    inner = encode_bundle(IMMEDIATELY, [encode_message("/seq", (i,)) for i in range(3, 6)])
    outer = encode_bundle(
        IMMEDIATELY,
        [*(encode_message("/seq", (i,)) for i in range(3)), inner, encode_message("/seq", (6,))],
    )
    c = Udp(srv.port)
    c.send(outer)
    assert [c.recv().params[1] for _ in range(7)] == list(range(7))
    assert [inc.args[0] for inc, _ in srv.received] == list(range(7))
    assert len({inc.arrival for inc, _ in srv.received}) == 1  # one packet, one arrival time


def test_past_bundle_runs_now(srv: ServerThread) -> None:
    c = Udp(srv.port)
    c.send(encode_bundle(time.time() - 10, [encode_message("/past")]))
    assert c.recv(timeout=1).params == ["/past"]


def test_future_bundle_on_time_without_blocking_others(srv: ServerThread) -> None:
    c = Udp(srv.port)
    due = time.time() + 0.3
    sent_at = time.monotonic()
    c.send(
        encode_bundle(
            TimeTag.from_unix(due), [encode_message("/later", (1,)), encode_message("/later", (2,))]
        )
    )
    c.send(osc("/now"))
    first = c.recv()
    assert first.params == ["/now"]  # sent after the bundle, answered before it: nothing waited on it
    assert [c.recv().params for _ in range(2)] == [["/later", 1], ["/later", 2]]
    later = [(inc, t) for inc, t in srv.received if inc.address == "/later"]
    for inc, handled in later:
        # Never early (2 ms: the clocks' conversion); late only by what a busy shared machine
        # may add, far less than the 0.3 s that running it at arrival or twice delayed would be off.
        assert -0.002 <= handled - due < 0.15, f"ran {1000 * (handled - due):.1f} ms off its time tag"
        assert inc.arrival - sent_at < 0.2  # arrival is the packet's (0.3 s before it runs), not the run time
    assert srv.server.stats.bundles_scheduled == 1


def test_equal_time_tags_keep_arrival_order(srv: ServerThread) -> None:
    c = Udp(srv.port)
    tt = TimeTag.from_unix(time.time() + 0.1)
    for i in range(20):
        c.send(encode_bundle(tt, [encode_message("/o", (i,))]))
    assert [c.recv().params[1] for _ in range(20)] == list(range(20))


def test_nested_bundle_not_before_parent_and_limits(srv: ServerThread) -> None:
    c = Udp(srv.port)
    due = time.time() + 0.15
    c.send(
        encode_bundle(TimeTag.from_unix(due), [encode_bundle(time.time() - 5, [encode_message("/child")])])
    )
    assert c.recv().params == ["/child"]
    assert time.time() >= due - 0.002
    c.send(encode_bundle(time.time() + 7200, [encode_message("/far")]))
    r = c.recv()
    assert r.address == "/fail" and "exceeds 3600.0 s" in r.params[1]


# --------------------------------------------------------------------------- TCP


def test_tcp_slip_echo_fragmented_and_escaped(srv: ServerThread) -> None:
    c = Tcp(srv.port)
    nasty = b"\xc0\xdb\xdb\xdc\xc0"
    c.send(osc("/blob", nasty))
    r = c.recv()
    assert r.params == ["/blob", nasty]
    data = slip(osc("/frag", 1, "two")) + slip(osc("/frag", 3))
    for i in range(len(data)):  # one byte at a time
        c.send_raw(data[i : i + 1])
    assert c.recv().params == ["/frag", 1, "two"]
    assert c.recv().params == ["/frag", 3]
    c.send_raw(
        slip(osc("/a")) + slip(osc("/b")) + b"\xc0\xc0\xc0" + slip(osc("/c"))
    )  # pipelined, empty frames
    assert [c.recv().params[0] for _ in range(3)] == ["/a", "/b", "/c"]
    inc = srv.received[0][0]
    assert inc.peer.protocol == "tcp" and inc.peer.conn_id > 0
    assert srv.server.stats.tcp_connections == 1


def test_tcp_length_echo(srv_length: ServerThread) -> None:
    c = Tcp(srv_length.port, "length")
    c.send(osc("/len", 1, 2.5, "three"))
    assert c.recv().params == ["/len", 1, 2.5, "three"]
    c.send_raw((struct.pack(">i", 8) + osc("/x") + struct.pack(">i", 8) + osc("/y"))[:-3])
    c.send_raw(osc("/y")[-3:])
    assert [c.recv().params for _ in range(2)] == [["/x"], ["/y"]]
    c.send_raw(struct.pack(">i", 0))  # an empty packet: reported, the stream stays in step
    assert c.recv().params == ["?", "empty packet"]
    c.send(osc("/z"))
    assert c.recv().params == ["/z"]


@pytest.mark.parametrize("mode", ["1.1", "1.0"])
def test_python_osc_tcp_client(mode: str) -> None:
    server = ServerThread(tcp_framing="slip" if mode == "1.1" else "length")
    try:
        with SimpleTCPClient("127.0.0.1", server.port, mode=mode, timeout=3) as c:  # type: ignore[no-untyped-call]
            c.send_message("/hello", [1, 2.5, "x"])
            replies = c.receive(timeout=3)
        assert [OscMessage(r).params for r in replies] == [["/hello", 1, 2.5, "x"]]
    finally:
        server.close()


def test_tcp_garbage_gets_fail_and_connection_survives(srv: ServerThread) -> None:
    c = Tcp(srv.port)
    other = Tcp(srv.port)
    c.send_raw(b"\xc0garbage\xc0")
    r = c.recv()
    assert r.address == "/fail" and "size 7 is not a multiple of 4" in r.params[1]
    c.send_raw(b"\xc0/x\x00\x00\xdb\x01,\x00\x00\x00\xc0")
    assert "bad SLIP escape" in c.recv().params[1]
    c.send(osc("/still"))
    assert c.recv().params == ["/still"]
    other.send(osc("/other"))
    assert other.recv().params == ["/other"]


def test_tcp_oversize_slip_frame_closes_only_that_connection(srv: ServerThread) -> None:
    bad = Tcp(srv.port)
    good = Tcp(srv.port)
    wait_for(lambda: srv.server.stats.tcp_connections == 2)
    chunk = b"\x01" * 65536
    try:
        for _ in range(4):  # 256 KiB, no END: more than twice max_datagram
            bad.send_raw(chunk)
    except (BrokenPipeError, ConnectionResetError):
        pass
    r = bad.recv()
    assert r.address == "/fail" and "without END" in r.params[1]
    assert bad.closed()  # the server half-closed after its /fail, without a reset
    bad.sock.close()
    good.send(osc("/alive"))
    assert good.recv().params == ["/alive"]
    wait_for(lambda: srv.server.stats.tcp_connections == 1)


def test_tcp_bad_length_prefix_closes(srv_length: ServerThread) -> None:
    bad = Tcp(srv_length.port, "length")
    good = Tcp(srv_length.port, "length")
    bad.send_raw(struct.pack(">i", 0x7FFFFFFF) + b"/x\x00\x00")
    r = bad.recv()
    assert r.address == "/fail" and "length prefix 2147483647 outside 0..65536" in r.params[1]
    assert bad.closed()
    good.send(osc("/alive"))
    assert good.recv().params == ["/alive"]


def test_async_send_to_tcp_and_udp_peers(srv: ServerThread) -> None:
    t = Tcp(srv.port)
    u = Udp(srv.port)
    srv.routes["/later"] = lambda inc: []
    t.send(osc("/later"))
    u.send(osc("/later"))
    wait_for(lambda: len(srv.received) == 2)
    for inc, _ in srv.received:
        srv.run(functools.partial(srv.server.send, inc.peer, "/synced", (7,)))
    assert t.recv().params == [7]
    assert u.recv().params == [7]
    gone = Peer("tcp", "127.0.0.1", 1, conn_id=999)
    srv.run(lambda: srv.server.send(gone, "/x", ()))
    assert srv.server.stats.send_dropped == 1


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback")
def test_ipv6_udp_and_tcp() -> None:
    server = ServerThread(host="::1")
    try:
        u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        _SOCKETS.append(u)
        u.settimeout(3)
        u.sendto(osc("/six", 6), ("::1", server.port))
        assert OscMessage(u.recv(65536)).params == ["/six", 6]
        t = socket.create_connection(("::1", server.port), timeout=3)
        _SOCKETS.append(t)
        t.sendall(slip(osc("/six/tcp")))
        assert t.recv(1000) == slip(encode_message("/echo", ("/six/tcp",)))
        assert [inc.peer.host for inc, _ in server.received] == ["::1", "::1"]
    finally:
        server.close()


# --------------------------------------------------------------------------- liblo and load


@pytest.mark.skipif(shutil.which("oscsend") is None, reason="liblo-tools not installed")
def test_liblo_oscsend_udp_and_tcp(srv: ServerThread, srv_length: ServerThread) -> None:
    subprocess.run(
        ["oscsend", "localhost", str(srv.port), "/x", "ifs", "1", "2.5", "hi"], check=True, timeout=10
    )
    wait_for(lambda: len(srv.received) == 1)
    inc = srv.received[0][0]
    assert (inc.address, inc.args, inc.tags) == ("/x", (1, 2.5, "hi"), "ifs")
    url = f"osc.tcp://127.0.0.1:{srv_length.port}"
    subprocess.run(["oscsend", url, "/y", "hTN", "5"], check=True, timeout=10)
    wait_for(lambda: len(srv_length.received) == 1)
    inc = srv_length.received[0][0]
    assert (inc.address, inc.args, inc.tags, inc.peer.protocol) == ("/y", (5, True, None), "hTN", "tcp")


@pytest.mark.skipif(shutil.which("oscdump") is None, reason="liblo-tools not installed")
def test_liblo_oscdump_receives_send(srv: ServerThread) -> None:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    dump = subprocess.Popen(["oscdump", "-L", str(port)], stdout=subprocess.PIPE, text=True)
    assert dump.stdout is not None
    try:
        time.sleep(0.3)  # let it bind
        peer = Peer("udp", "127.0.0.1", port)
        srv.run(lambda: srv.server.send(peer, "/hello", (1, 2.5, "x", True)))
        ready, _, _ = select.select([dump.stdout], [], [], 5)
        line = dump.stdout.readline() if ready else ""
    finally:
        dump.terminate()
        dump.communicate(timeout=5)
    assert '/hello ifsT 1 2.500000 "x" #T' in line


def test_loadgen_short_run(srv: ServerThread) -> None:
    srv.routes["/status"] = lambda inc: [("/status.reply", ("clients", 1, "engine", "patch", "p50", 0.5))]
    # A reply counts as lost only after 5 s of silence: a busy machine may pause the test's own
    # server thread for longer than the bench's 0.5 s, and that is not a loss.
    window = spawn_load("127.0.0.1", srv.port, in_flight=64, duration=0.5, timeout=5.0)
    assert window.lost == 0 and window.unexpected == 0 and window.received > 500
    assert window.p50_ms > 0 and window.rate > 500
    burst = spawn_load("127.0.0.1", srv.port, mode="burst", count=2000, timeout=5.0)
    assert burst.received == 2000 and burst.loss == 0.0


@pytest.mark.slow
def test_udp_throughput_figures(srv: ServerThread) -> None:
    """Longer load runs (figures printed with -s); only loss is asserted, rates depend on the machine."""
    status = ("clients", 1, "voices", 0, "engine", "patch", "audio", "null", "sample_rate", 48000)
    srv.routes["/status"] = lambda inc: [("/status.reply", status)]
    for kw in (
        dict(in_flight=256, duration=5.0),
        dict(in_flight=1, duration=3.0),
        dict(mode="burst", count=8000),
    ):
        r = spawn_load("127.0.0.1", srv.port, **kw)
        print(r.to_dict())
        assert r.lost == 0 and r.unexpected == 0


def test_polls_answer_their_exact_packets_without_the_handler(srv: ServerThread) -> None:
    calls: list[tuple[Peer, float]] = []
    declined: list[Peer] = []

    def poll(peer: Peer, arrival: float) -> bytes | None:
        if peer.protocol == "udp" and peer.port == decline_port:
            declined.append(peer)
            return None  # the normal path answers instead
        calls.append((peer, arrival))
        return encode_message("/poll.reply", (len(calls),))

    ping = encode_message("/ping", ())
    srv.server.polls = {ping: poll}
    u, other, t = Udp(srv.port), Udp(srv.port), Tcp(srv.port)
    other.sock.bind(("127.0.0.1", 0))
    decline_port = other.sock.getsockname()[1]
    u.send(ping)
    assert u.recv().address == "/poll.reply"
    t.send(ping)
    m = t.recv()
    assert (m.address, m.params) == ("/poll.reply", [2])
    assert srv.received == []  # the handler never saw them
    assert calls[0][0].protocol == "udp" and calls[1][0].protocol == "tcp" and calls[0][1] > 0
    u.send(encode_message("/ping", (1,)))  # not the exact bytes: the handler's
    assert u.recv().address == "/echo"
    other.send(ping)
    assert other.recv().address == "/echo" and len(declined) == 1


def test_feedback_packets_fan_out_beside_the_loop_in_order_and_never_to_a_guarded_port(srv: ServerThread) -> None:
    """send_packets hands UDP peers to the fan-out thread: every peer receives every packet, in
    order; a privileged port and the server's own are refused by the same guard as any reply;
    TCP peers are written on the loop."""
    sinks = []
    for _ in range(20):
        r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        r.bind(("127.0.0.1", 0))
        r.settimeout(5.0)
        sinks.append(r)
        _SOCKETS.append(r)
    packets = [encode_message("/n", (i,)) for i in range(5)]
    peers = [Peer("udp", "127.0.0.1", r.getsockname()[1]) for r in sinks]
    guarded = [Peer("udp", "127.0.0.1", 7), Peer("udp", "127.0.0.1", srv.port)]
    tcp = socket.create_connection(("127.0.0.1", srv.port), timeout=5.0)
    _SOCKETS.append(tcp)
    tcp.sendall(slip(osc("/hi")))
    deadline = time.monotonic() + 5
    while not any(inc.peer.protocol == "tcp" for inc, _ in srv.received):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    tcp_peer = next(inc.peer for inc, _ in srv.received if inc.peer.protocol == "tcp")
    refused = srv.server.stats.send_refused
    for _ in range(3):  # three ticks
        srv.run(lambda: srv.server.send_packets([*peers, *guarded, tcp_peer], packets))
    for r in sinks:
        got = [OscMessage(r.recv(1024)).params[0] for _ in range(15)]
        assert got == [0, 1, 2, 3, 4] * 3
    assert srv.server.stats.send_refused == refused + 6
    frames: list[int] = []
    buf = b""
    while len(frames) < 15:  # after the /echo of /hi
        buf += tcp.recv(65536)
        *done, buf = buf.split(b"\xc0")
        frames += [OscMessage(f).params[0] for f in done if f and OscMessage(f).address == "/n"]
    assert frames == [0, 1, 2, 3, 4] * 3


def test_a_fan_out_thread_that_falls_behind_loses_its_oldest_jobs_counted() -> None:
    from timbrespace.protocol.fanout import MAX_JOBS, UdpFanout

    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)  # the burst must fit, read or not
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(5.0)
    _SOCKETS.append(rx)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    _SOCKETS.append(tx)
    got: list[int] = []
    total = MAX_JOBS + 10

    def read() -> None:
        while not got or got[-1] != total - 1:
            got.append(OscMessage(rx.recv(1024)).params[0])

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    fan = UdpFanout(tx)
    try:
        with fan._cond:  # the thread cannot take a job meanwhile: it is behind by all of them
            for i in range(total):
                fan.send([encode_message("/n", (i,))], [rx.getsockname()])
        reader.join(10)
        assert fan.dropped_jobs == 10
        assert got == list(range(10, total))  # the oldest went, the newest arrived, in order
    finally:
        fan.close()
