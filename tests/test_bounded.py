"""Issue 14, bounded memory: a client cannot grow the server's caches, queues, tables or connections.

Each test drives a real server process over real sockets and reads the server's resident memory
from /proc/<pid>/status; bounds come from what each fix claims, far from what the defect cost.
"""

from __future__ import annotations

import contextlib
import resource
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pythonosc.osc_message import OscMessage

from conftest import OscClient, ServerProc, osc, start_server

MiB = 1 << 20


def rss(s: ServerProc) -> int:
    """Resident memory of the server's control process, bytes."""
    for line in Path(f"/proc/{s.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def cpu(s: ServerProc) -> float:
    """User + system CPU seconds of the server's control process (reported, never asserted)."""
    fields = Path(f"/proc/{s.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100.0


def bundle(when: float, *elements: bytes) -> bytes:
    """An OSC bundle for Unix time ``when`` (0: immediately)."""
    from timbrespace.protocol.codec import TimeTag

    tt = 1 if when == 0 else int(TimeTag.from_unix(when))
    return b"#bundle\x00" + struct.pack(">Q", tt) + b"".join(struct.pack(">i", len(e)) + e for e in elements)


def slip(packet: bytes) -> bytes:
    return b"\xc0" + packet.replace(b"\xdb", b"\xdb\xdd").replace(b"\xc0", b"\xdb\xdc") + b"\xc0"


def read_slip(sock: socket.socket, want: str, timeout: float = 10.0) -> OscMessage:
    """Read SLIP frames from ``sock`` until one addressed ``want``."""
    sock.settimeout(timeout)
    buf = b""
    while True:
        chunk = sock.recv(1 << 16)
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
        *frames, buf = buf.split(b"\xc0")
        for f in frames:
            if f:
                m = OscMessage(f.replace(b"\xdb\xdc", b"\xc0").replace(b"\xdb\xdd", b"\xdb"))
                if m.address == want:
                    return m


def closed_by_server(sock: socket.socket, timeout: float) -> bool:
    """True when the server closes ``sock`` within ``timeout`` (replies before the close are skipped)."""
    sock.settimeout(timeout)
    try:
        while sock.recv(1 << 16):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        pass
    return True


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProc]:
    s = start_server(tmp_path)
    yield s
    s.stop()


@pytest.fixture
def client(server: ServerProc) -> Iterator[OscClient]:
    c = server.client()
    yield c
    c.close()


# ----------------------------------------------------------------------------- the decoder's plans


def huge_header(n: int) -> bytes:
    """A 64 KB message with a distinct address and 21,600 type tags (`iT` x 10,800)."""
    addr = f"/y{n}".encode()
    addr += b"\x00" * (4 - len(addr) % 4)
    tags = b"," + b"iT" * 10800
    tags += b"\x00" * (4 - len(tags) % 4)
    return addr + tags + struct.pack(">10800i", *range(10800))


def test_distinct_huge_headers_do_not_grow_memory(server: ServerProc, client: OscClient) -> None:
    """Before: each distinct header cached a generated decoder of ~5 MB (20 of them: ~100 MiB)."""
    client.send_raw(huge_header(-1))
    client.expect("/fail")
    before, cpu0 = rss(server), cpu(server)
    for n in range(20):
        client.send_raw(huge_header(n))
        client.expect("/fail", timeout=30)
    grown = rss(server) - before
    print(f"20 distinct huge headers: RSS +{grown / MiB:.1f} MiB, CPU {(cpu(server) - cpu0) / 20 * 1e3:.1f} ms each")
    assert grown < 20 * MiB


# ----------------------------------------------------------------------------- the client table


def test_client_table_bounded_under_many_sources(server: ServerProc, client: OscClient) -> None:
    """Before: one entry per distinct source address, kept for 60 s (2 M sources: +420 MiB)."""
    from timbrespace.session.clients import MAX_PASSERS as MAX_CLIENTS

    status = osc("/version")
    n = MAX_CLIENTS + 20000
    client.status()
    before = rss(server)
    sent = 0
    for a in range(2, 250):
        for b in range(1, 250):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                s.bind((f"127.0.{a}.{b}", 0))
                s.sendto(status, (server.host, server.port))
            finally:
                s.close()
            sent += 1
            if sent % 500 == 0:  # keep within the server's receive buffer
                client.status()
            if sent >= n:
                break
        if sent >= n:
            break
    clients = client.status()["clients"]
    grown = rss(server) - before
    print(f"{sent} sources: clients={clients}, RSS +{grown / MiB:.1f} MiB")
    assert clients <= MAX_CLIENTS
    assert grown < 8 * MiB


# ----------------------------------------------------------------------------- scheduled bundles


def tcp(s: ServerProc) -> socket.socket:
    sock = socket.create_connection((s.host, s.port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def test_one_client_filling_its_share_of_future_bundles_leaves_others_served(
    server: ServerProc, client: OscClient
) -> None:
    """Before: 10,050 tiny future bundles from one client filled the shared cap for everyone."""
    later = time.time() + 600
    hog = tcp(server)
    try:
        hog.sendall(b"".join(slip(bundle(later, osc("/version"))) for _ in range(10050)))
        hog.sendall(slip(osc("/version")))
        read_slip(hog, "/version.reply", timeout=30)  # all of them handled
        client.send_raw(bundle(time.time() + 0.2, osc("/version")))
        client.expect("/version.reply")
    finally:
        hog.close()


def test_future_bundles_bounded_in_bytes(server: ServerProc, client: OscClient) -> None:
    """Before: future bundles were capped by count only; big ones held hundreds of MiB."""
    later = time.time() + 600
    tiny = osc("/a", 100000, 100001, 100002, 100003)  # ~10x larger decoded than on the wire
    big = bundle(later, *([tiny] * ((65000 - 16) // (len(tiny) + 4))))
    hog = tcp(server)
    try:
        hog.sendall(slip(osc("/version")))
        read_slip(hog, "/version.reply")
        before = rss(server)
        hog.sendall(b"".join(slip(big) for _ in range(120)))
        hog.sendall(slip(osc("/version")))
        read_slip(hog, "/version.reply", timeout=60)
        grown = rss(server) - before
        print(f"120 future bundles of {len(big)} bytes: RSS +{grown / MiB:.1f} MiB")
        assert grown < 24 * MiB
        client.send_raw(bundle(time.time() + 0.2, osc("/version")))  # others still scheduled
        client.expect("/version.reply")
    finally:
        hog.close()


def test_burst_at_one_time_tag_does_not_block_other_clients(server: ServerProc, client: OscClient) -> None:
    """Before: every bundle due at one time ran in one go, others' requests waited for all of it."""
    burst = osc("/latent", 0.5, 0.5)
    per = (65000 - 16) // (len(burst) + 4)
    at = time.time() + 1.0
    hog = OscClient(server.host, server.port)
    try:
        for _ in range(30):
            hog.send_raw(bundle(at, *([burst] * per)))
            hog.send("/version")
            hog.expect("/version.reply")
        hog.send_raw(bundle(at, osc("/version")))  # answered when the whole burst has run
        time.sleep(max(0.0, at - time.time()) + 0.005)
        client.send("/status")
        done = False
        answered_first = 0
        deadline = time.monotonic() + 30
        hog.sock.settimeout(0.001)
        while not done and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                if OscMessage(hog.sock.recv(65536)).address == "/version.reply":
                    done = True
                    break
            with contextlib.suppress(TimeoutError):
                if client.recv(0.001).address == "/status.reply":
                    answered_first += 1
                    client.send("/status")
        print(f"{30 * per} messages due at one time: {answered_first} /status answered during the burst")
        assert done
        assert answered_first >= 1
    finally:
        hog.close()


def test_a_note_flood_fills_its_senders_share_of_the_audio_queue_not_everyones(server: ServerProc) -> None:
    """Before: the command socket to the audio process was shared first come, first served: a
    loopback client flooding note-ons (no rate limit applies to loopback) kept it full, and other
    clients' note-ons were refused with /fail. Each client now has a share of it.

    And before that flood reached the audio side it filled the UDP socket's buffer, which all UDP
    clients share: the kernel dropped the others' datagrams, and those it kept waited behind seconds
    of the flood (8 of 60 /syncs answered, after 9 s). The flooder's datagrams are now shed unread
    while the buffer backs up, and every /sync of the other client is answered."""
    import threading

    per = 2000  # note-ons per bundle: far more than the audio side takes in a block (64)
    flood = bundle(0, *[osc("/note", 24 + i % 96, 100) for i in range(per)])
    stop = threading.Event()
    hog = OscClient(server.host, server.port)
    victim = server.client()

    def flooding() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError):
                hog.send_raw(flood)
            time.sleep(0.002)

    reasons: set[str] = set()  # each kind of /fail the hog was sent (its first words)

    def hearing() -> None:  # the hog's replies drained as they come: its buffer would drop the rarer ones
        while not stop.is_set():
            with contextlib.suppress(OSError):
                m = hog.recv(0.1)
                if m.address == "/fail":
                    reasons.add(str(m.params[1])[:80])

    threads = [threading.Thread(target=flooding, daemon=True), threading.Thread(target=hearing, daemon=True)]
    for thread in threads:
        thread.start()
    syncs = 10
    try:
        time.sleep(0.3)  # the flood is on
        refused: list[str] = []
        synced: set[int] = set()
        for k in range(20):
            victim.send("/note", 60 + k % 12, 90)
            victim.send("/note", 60 + k % 12, 0)
            time.sleep(0.02)
        for k in range(syncs):  # one at a time, each a datagram of its own the kernel could drop
            victim.send("/sync", k)
            time.sleep(0.05)
        with contextlib.suppress(TimeoutError):  # a /sync lost is a missing id below
            while len(synced) < syncs:
                m = victim.recv(20)
                if m.address == "/synced":
                    synced.add(int(m.params[0]))
                elif m.address == "/fail":
                    refused.append(str(m.params))
        assert refused == [], f"{len(refused)} of the victim's messages refused during the flood: {refused[:2]}"
        assert synced == set(range(syncs)), f"/syncs answered during the flood: {sorted(synced)}"
    finally:
        stop.set()
        for thread in threads:
            thread.join(5)
        hog.close()
        victim.close()
    assert any("commands waiting for the audio side" in r for r in reasons), reasons
    assert any(r.startswith("server overloaded") for r in reasons), reasons


# ----------------------------------------------------------------------------- TCP connections

LIMITS = {"max_connections": 24, "max_connections_per_host": 12, "tcp_idle_timeout": 2.0,
          "tcp_frame_timeout": 1.0}


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[ServerProc]:
    s = start_server(tmp_path, network=LIMITS)
    yield s
    s.stop()


def test_connection_caps_idle_and_half_sent_timeouts(limited: ServerProc) -> None:
    """Before: no cap, no idle timeout: idle and half-sent connections stayed forever."""
    socks = [tcp(limited) for _ in range(30)]
    try:
        time.sleep(0.3)
        refused = [s for s in socks if closed_by_server(s, 0.05)]
        assert len(refused) == 30 - LIMITS["max_connections_per_host"]
        kept = [s for s in socks if s not in refused]
        kept[0].sendall(slip(osc("/version"))[:-1])  # a frame that never ends
        for s in kept[1:]:
            s.sendall(slip(osc("/version")))
            read_slip(s, "/version.reply")
        assert read_slip(kept[0], "/fail").params[1].startswith("malformed packet: incomplete frame")
        assert all(closed_by_server(s, 10) for s in kept)  # idle
        fresh = tcp(limited)  # the slots are free again
        fresh.sendall(slip(osc("/version")))
        read_slip(fresh, "/version.reply")
        fresh.close()
    finally:
        for s in socks:
            s.close()


def test_a_stream_whose_reads_end_mid_frame_is_not_a_stalled_frame(limited: ServerProc) -> None:
    """Before: the frame clock ran from the first unfinished read and was reset only when the
    buffer emptied, so a client streaming frames (each read ending mid-frame, as under load) was
    closed as "incomplete frame ... for 10 s" while every frame completed (the CI soak's fault)."""
    sock = tcp(limited)
    try:
        frame = slip(osc("/version"))
        half = len(frame) // 2
        ident = 0
        end = time.monotonic() + 3 * LIMITS["tcp_frame_timeout"]
        sock.sendall(frame[:half])
        while time.monotonic() < end:
            ident += 1
            # the rest of the last frame, a whole /sync, half of the next: every write ends mid-frame
            sock.sendall(frame[half:] + slip(osc("/sync", ident)) + frame[:half])
            read_slip(sock, "/synced")
            time.sleep(0.05)
        sock.sendall(frame[half:])
        read_slip(sock, "/version.reply")
        assert ident > 3 * LIMITS["tcp_frame_timeout"] / 0.5  # it streamed across several timeouts
        assert not closed_by_server(sock, 0.2)
    finally:
        sock.close()


def test_unfinished_frames_bounded(limited: ServerProc) -> None:
    """Before: 2,000 connections each holding an unfinished 131 KB frame held 292 MiB."""
    before = rss(limited)
    socks = []
    try:
        for _ in range(300):
            s = tcp(limited)
            socks.append(s)
            with contextlib.suppress(OSError):
                s.sendall(b"\xc0" + b"/" * 120000)
        time.sleep(0.5)
        grown = rss(limited) - before
        print(f"300 connections with unfinished frames: RSS +{grown / MiB:.1f} MiB")
        assert grown < 16 * MiB
    finally:
        for s in socks:
            s.close()


def test_at_the_descriptor_limit_no_log_flood_and_saves_work(tmp_path: Path) -> None:
    """Before: at the fd limit accept errors flooded the log and /patch/save failed (EMFILE)."""
    s = start_server(tmp_path, network={"max_connections": 4000, "max_connections_per_host": 4000})
    socks: list[socket.socket] = []
    try:
        used = len(list(Path(f"/proc/{s.proc.pid}/fd").iterdir()))
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.prlimit(s.proc.pid, resource.RLIMIT_NOFILE, (used + 100, hard))
        lines0 = len(s.lines)
        for _ in range(400):
            with contextlib.suppress(OSError):
                socks.append(socket.create_connection((s.host, s.port), timeout=0.2))
        time.sleep(2)
        c = s.client()
        c.send("/patch/save", "at the limit")
        reply = c.expect("/patch/save.reply", timeout=10)
        assert reply.params
        assert c.status()["clients"] >= 1
        c.close()
        logged = len(s.lines) - lines0
        print(f"400 connects at a limit of {used + 100} descriptors: {logged} log lines")
        assert logged < 40
    finally:
        for sock in socks:
            sock.close()
        s.stop()
