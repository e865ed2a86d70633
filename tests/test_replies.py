"""Replies: where they go and how big they get (issue 14), against a real server over real sockets."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
from pythonosc.osc_message import OscMessage

from test_transport import ServerThread, slip
from timbrespace.protocol.encode import encode_bundle, encode_message
from timbrespace.protocol.replies import UDP_REPLY_FACTOR, UDP_REPLY_FLOOR
from timbrespace.protocol.transport import Incoming, Reply
from timbrespace.ratelog import RateLimitedLog

from conftest import OscClient, ServerProc, osc, start_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProc]:
    s = start_server(tmp_path_factory.mktemp("replies"))
    yield s
    s.stop()


def _drain(sock: socket.socket, quiet: float = 0.3) -> list[bytes]:
    """Every datagram that arrives until ``quiet`` seconds pass without one."""
    sock.settimeout(quiet)
    out: list[bytes] = []
    try:
        while True:
            out.append(sock.recv(65536))
    except TimeoutError:
        return out


def _received(c: OscClient) -> int:
    return int(c.status()["received"])


def test_reply_port_refuses_the_servers_own_port_and_privileged_ports(server: ServerProc) -> None:
    c = server.client()
    fail = c.request("/reply/port", server.port, reply="/fail").params
    assert fail[0] == "/reply/port" and "server's own" in fail[1] and "1024..65535" in fail[1]
    for port in (1, 7, 53, 1023):
        fail = c.request("/reply/port", port, reply="/fail").params
        assert "privileged" in fail[1] and "1024..65535" in fail[1], fail
    # No loop started: a bad packet now costs one message, not a storm of /fail to itself.
    c.send("/nope")
    c.expect("/fail")
    before = _received(c)
    time.sleep(0.3)
    assert _received(c) - before < 10
    assert c.request("/reply/port", 0).params == [c.sock.getsockname()[1]]
    c.close()


def test_no_reply_to_a_source_that_is_the_servers_own_port(server: ServerProc) -> None:
    """Defence in depth: a spoofed source of one of the server's own sockets gets nothing back."""
    spoof = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        spoof.bind(("127.0.0.2", server.port))  # another loopback address, the server's port
    except OSError as e:
        pytest.skip(f"cannot bind 127.0.0.2: {e}")
    try:
        for packet in (b"\x00", osc("/nope"), osc("/status"), osc("/version")):
            spoof.sendto(packet, (server.host, server.port))
        assert _drain(spoof) == []
    finally:
        spoof.close()
    c = server.client()
    assert c.status()["engine"] == "patch"
    c.close()


def test_replies_are_never_answered(server: ServerProc) -> None:
    """A /fail answered with a /fail lets two servers (or one and itself) answer each other forever."""
    c = server.client()
    for address, args in (("/fail", ("/x", "why")), ("/status.reply", ("clients", 1)), ("/synced", (1,))):
        c.send(address, *args)
    assert _drain(c.sock) == []
    c.close()


AMPLIFIERS = [
    osc("/patch/list"),  # was 87 KB in 23 datagrams
    osc("/patch/list", 0, 64),
    osc("/status"),
    b"\x00",
    osc("/param", "x", 0.5),
    osc("/" + "a" * 65000),
    osc("/note", 60, 100, *range(200)),
]


@pytest.mark.parametrize("packet", AMPLIFIERS, ids=lambda p: p[:16].split(b"\0")[0].decode() or "1 byte")
def test_udp_replies_are_bounded_by_the_request(server: ServerProc, packet: bytes) -> None:
    c = server.client()
    c.send_raw(packet)
    replies = _drain(c.sock)
    assert replies, "every request gets an answer"
    size = sum(map(len, replies))
    assert size <= max(UDP_REPLY_FACTOR * len(packet), UDP_REPLY_FLOOR), (size, len(packet))
    c.close()


def test_huge_rejections_still_get_a_clipped_fail(server: ServerProc) -> None:
    c = server.client()
    c.send_raw(osc("/" + "a" * 65000))
    fail = c.expect("/fail").params
    assert fail[0].startswith("/aaa") and fail[0].endswith("…") and len(fail[0]) < 300
    assert "unknown address" in fail[1] and len(fail[1]) < 300
    # A 300-digit integer is not repeated in full.
    c.send_raw(encode_message("/note", (1e300, 100.0), tags="dd"))
    fail = c.expect("/fail").params
    assert "out of range" in fail[1] and "(301 characters)" in fail[1] and len(fail[1]) < 200
    c.close()


def test_patch_list_pages_cover_every_preset(server: ServerProc) -> None:
    c = server.client()
    first = c.request("/patch/list", 0, 64).params
    total, names = first[0], first[2:]
    while len(names) < total:
        page = c.request("/patch/list", len(names), 64).params
        assert page[1] == len(names) and page[2:]
        names += page[2:]
    assert len(names) == total
    assert c.request("/patch/load", names[-1]).params[1] == names[-1]
    c.close()


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_a_bundle_of_requests_gets_a_bounded_streamed_answer(server: ServerProc) -> None:
    """One 64 KB bundle of list and status requests: replies bounded by its size, memory flat."""
    elements = [osc("/patch/list", 0, 64), osc("/status")] * 1200
    bundle = encode_bundle(None, elements)
    assert len(bundle) < 65000
    c = server.client()
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    rss = _rss_kb(server.proc.pid)
    c.send_raw(bundle)
    replies = _drain(c.sock, 0.5)
    size = sum(map(len, replies))
    assert 0 < size <= UDP_REPLY_FACTOR * len(bundle)
    budget = [OscMessage(r) for r in replies if r.startswith(b"/fail")]
    assert len(budget) == 1 and "reply budget" in budget[0].params[1]
    assert c.status()["engine"] == "patch"
    assert _rss_kb(server.proc.pid) - rss < 50_000  # was +200 MB: every reply built before any was sent
    c.close()


def test_sync_id_must_fit_the_reply_and_other_syncs_survive(server: ServerProc) -> None:
    c = server.client()
    bundle = encode_bundle(None, [
        osc("/sync", 1), encode_message("/sync", (1e300,), tags="d"), osc("/sync", 2),
    ])
    c.send_raw(bundle)
    got = [OscMessage(d) for d in _drain(c.sock, 1.0)]
    fails = [m.params for m in got if m.address == "/fail"]
    assert len(fails) == 1 and fails[0][0] == "/sync" and "out of range" in fails[0][1]
    assert sorted(m.params[0] for m in got if m.address == "/synced") == [1, 2]
    c.close()


def test_patch_save_reply_names_the_bank_not_its_path(server: ServerProc) -> None:
    c = server.client()
    saved = c.request("/patch/save", "where am i").params
    assert saved[2] == "user.amSynth.bank" and "/" not in saved[2]
    c.close()


# -- transport-level: a handler we control, real sockets --------------------------------------


@pytest.fixture
def srv() -> Iterator[ServerThread]:
    s = ServerThread()
    yield s
    s.close()


def test_an_unencodable_reply_costs_only_itself(srv: ServerThread) -> None:
    srv.routes["/mixed"] = lambda inc: [("/a", (1,)), ("/b", (object(),)), ("/c", (3,))]
    c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    c.bind(("127.0.0.1", 0))
    c.sendto(osc("/mixed"), ("127.0.0.1", srv.port))
    got = [OscMessage(d).address for d in _drain(c)]
    c.close()
    assert got == ["/a", "/fail", "/c"]
    assert srv.server.stats.encode_errors == 1


def test_a_closed_tcp_connections_queued_requests_are_not_handled(srv: ServerThread) -> None:
    handled: list[int] = []

    def slow(inc: Incoming) -> Iterable[Reply]:
        if not handled:
            time.sleep(0.3)  # the client resets the connection meanwhile
        handled.append(1)
        return [("/r", ("x" * 1000,))]

    srv.routes["/slow"] = slow
    n = 500
    s = socket.create_connection(("127.0.0.1", srv.port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = reset
    s.sendall(slip(encode_bundle(None, [osc("/slow")] * n)))
    time.sleep(0.1)
    s.close()
    deadline = time.monotonic() + 5
    while srv.run(lambda: srv.server.stats.tcp_connections) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(handled) < n
    assert srv.server.stats.dropped_closed > 0


def test_rate_limited_log_counts_what_it_drops(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    now = [0.0]
    rl = RateLimitedLog(logging.getLogger("t"), 3, "things", clock=lambda: now[0])
    with caplog.at_level(logging.INFO, "t"):
        for _ in range(100):
            rl.info("x")
        now[0] = 1.5
        rl.info("y")
    assert [r.getMessage() for r in caplog.records] == ["x"] * 3 + ["... and 97 more things not logged", "y"]


def test_rate_limited_log_over_a_longer_period(caplog: pytest.LogCaptureFixture) -> None:
    """One line per ten seconds (the TCP listener's connection events), the rest counted."""
    import logging

    now = [0.0]
    rl = RateLimitedLog(logging.getLogger("t"), 1, "refusals", clock=lambda: now[0], period=10.0)
    with caplog.at_level(logging.INFO, "t"):
        for t in range(0, 100):
            now[0] = t / 10.0  # 10 a second for 10 s: within one period
            rl.info("refused %d", t)
        now[0] = 10.0
        rl.info("refused again")
    assert [r.getMessage() for r in caplog.records] == ["refused 0", "... and 99 more refusals not logged",
                                                        "refused again"]


def test_the_longest_status_reply_fits_any_udp_request_budget() -> None:
    # A GPU server on PortAudio (or restarting its audio) answered 260 bytes: over a 256-byte floor,
    # every UDP /status poll got a /fail instead.
    from timbrespace.engines.registry import SPECS
    from timbrespace.protocol.replies import UDP_REPLY_FLOOR
    from timbrespace.status import Counters, ServerInfo, StatusReport

    longest = 0
    for audio in ("null", "jack", "portaudio", "restarting", "offline"):
        for device in ("cpu", "cuda", "cuda:0", "cuda:15"):
            for engine in (s.name for s in SPECS):
                report = StatusReport(ServerInfo(audio, 192000, 4096, device), Counters(), None, lambda now: 4096)
                report.engine_changed(engine)
                longest = max(longest, len(report.encode(0.0)))
    assert 250 < longest <= UDP_REPLY_FLOOR
