"""Sessions from outside: many clients over real UDP and TCP sockets against a real server.

Who is playing (/hello, /clients, /bye, rejoin), who owns which notes (released when their client
leaves, /panic vs /panic all), what subscribers see (/notify: the snapshot, every change, others'
cursors, coalesced to the feedback rate), and the LAN policy (allow list, admin list, rate limit).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from timbrespace.patch import params

from conftest import OscClient, ServerProc, TcpOscClient, start_server

RATE = 30.0  # sessions.feedback_rate in these servers
TIMEOUT = 1.5  # sessions.client_timeout: a vanished UDP client leaves after this long


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProc]:
    s = start_server(tmp_path_factory.mktemp("sessions"),
                     sessions={"client_timeout": TIMEOUT, "feedback_rate": RATE, "max_clients": 64})
    yield s
    s.stop()


class Mirror:
    """A subscriber's copy of the layer, kept from feedback only (what a TouchOSC page would show)."""

    def __init__(self, client: OscClient) -> None:
        self.client = client
        self.state: dict[tuple[Any, ...], list[Any]] = {}
        self.cursors: dict[int, tuple[float, float]] = {}
        self.joined: dict[int, str] = {}
        self.count: dict[str, int] = {}
        self.about: dict[int, int] = {}  # /clients messages per client id
        self.stop = threading.Event()

    def take(self, address: str, params_: list[Any]) -> None:
        self.count[address] = self.count.get(address, 0) + 1
        if address == "/clients" and params_:
            self.about[params_[1]] = self.about.get(params_[1], 0) + 1
        if address == "/cursor":
            self.cursors[params_[0]] = (params_[2], params_[3])
        elif address == "/clients" and params_:
            if params_[0] == "joined":
                self.joined[params_[1]] = params_[2]
            else:
                self.joined.pop(params_[1], None)
        elif address in ("/param", "/z"):
            self.state[(address, params_[0])] = params_[1:]
        elif not address.endswith(".reply") and address not in ("/done", "/fail"):
            self.state[(address,)] = params_

    def drain(self, quiet: float = 0.3) -> None:
        """Take feedback until none came for ``quiet`` seconds."""
        while True:
            try:
                m = self.client.recv(quiet)
            except (TimeoutError, OSError):
                return
            self.take(m.address, m.params)

    def run(self) -> None:
        renewed = time.monotonic()
        while not self.stop.is_set():
            if time.monotonic() - renewed > TIMEOUT / 3:  # a UDP subscriber renews (and so stays)
                self.client.send("/notify", 1)
                renewed = time.monotonic()
            try:
                m = self.client.recv(0.1)
            except (TimeoutError, OSError):
                continue
            self.take(m.address, m.params)


def subscribe(client: OscClient, name: str) -> tuple[int, Mirror]:
    ident = client.request("/hello", name).params[0]
    client.send("/notify", 1)
    assert client.expect("/done").params == ["/notify", ident]
    return ident, Mirror(client)


def voices(s: ServerProc, want: int, timeout: float = 5.0) -> int:
    with s.client() as c:
        return int(c.status_until(lambda st: st["voices"] == want, timeout)["voices"])


def test_hello_rejoin_clients_and_bye(srv: ServerProc) -> None:
    a, b = srv.client(), TcpOscClient(srv.host, srv.port)
    try:
        ann = a.request("/hello", "ann").params
        bob = b.request("/hello", "bob").params
        assert ann[1] == "ann" and bob[1] == "bob" and ann[0] != bob[0]
        listed = b.request("/clients").params
        total, start, rest = listed[0], listed[1], listed[2:]
        names = dict(zip(rest[::3], rest[1::3]))
        assert start == 0 and total >= 2 and names[ann[0]] == "ann" and names[bob[0]] == "bob"
        # Ann's client restarts: a new socket, the same name, the same id back.
        a.close()
        a = srv.client()
        assert a.request("/hello", "ann").params == ann
        a.send("/bye")
        assert a.expect("/done").params == ["/bye", ann[0]]
        rest = b.request("/clients").params[2:]
        assert ann[0] not in rest[::3]
        a.send("/hello", "a\u202eb")  # a right-to-left override: refused, named
        assert "/hello argument 'name'" in a.expect("/fail").params[1]
    finally:
        a.close()
        b.close()


def test_notes_are_released_when_their_client_leaves(srv: ServerProc) -> None:
    base = voices(srv, 0)
    tcp, udp, other = TcpOscClient(srv.host, srv.port), srv.client(), srv.client()
    try:
        tcp.send("/note", 60, 100)
        tcp.sync()
        udp.request("/hello", "drone")
        udp.send("/note", 64, 100)
        udp.sync()
        assert voices(srv, base + 2) == base + 2
        other.send("/panic")  # releases other's own notes only: it has none
        other.sync()
        time.sleep(0.2)
        assert voices(srv, base + 2) == base + 2
        tcp.close()  # vanishes mid-note: its connection closes
        assert voices(srv, base + 1) == base + 1
        # The UDP client goes silent: it leaves after sessions.client_timeout, and its note with it.
        assert voices(srv, base, timeout=TIMEOUT + 5.0) == base
    finally:
        for c in (tcp, udp, other):
            c.close()


def test_panic_all_is_for_admins(tmp_path: Path) -> None:
    s = start_server(tmp_path, sessions={"admin": ["10.9.9.9/32"]})  # loopback is not an admin here
    try:
        with s.client() as c, s.client() as d:
            c.send("/note", 60, 100)
            c.sync()
            d.send("/panic", "all")
            assert "admin only" in d.expect("/fail").params[1]
            for message in (("/mix/gain", 0.5), ("/layer/1/mix/pan", 1.0), ("/collision", "lock")):
                d.send(*message)
                fail = d.expect("/fail").params
                assert fail[0] == message[0] and "admin only" in fail[1], fail
            assert voices(s, 1) == 1
            c.send("/panic")  # its own
            c.sync()
            assert voices(s, 0) == 0
    finally:
        s.stop()


def test_subscribers_see_snapshot_changes_and_cursors_coalesced(srv: ServerProc) -> None:
    watcher, mover = TcpOscClient(srv.host, srv.port), srv.client()
    try:
        _, mirror = subscribe(watcher, "watcher")
        mirror.drain()
        assert mirror.state[("/engine",)] in (["patch"], ["timbre"])
        assert sum(1 for k in mirror.state if k[0] == "/param") == len(params.NAMES)  # the whole state
        me = mover.request("/hello", "mover").params[0]
        mover.send("/engine", "patch")
        t0 = time.monotonic()
        n = 300
        for k in range(n):  # a flood: 300 moves as fast as the socket takes them
            mover.send("/latent", k / (n - 1), 0.25)
        mover.send("/param", "filter_cutoff", 1.5)
        mover.sync()
        mirror.drain(0.5)
        elapsed = time.monotonic() - t0
        assert mirror.state[("/latent",)] == pytest.approx([1.0, 0.25], abs=1e-6)  # the last value arrives
        assert mirror.state[("/param", "filter_cutoff")] == pytest.approx([1.5])
        assert mirror.cursors[me] == pytest.approx((1.0, 0.25), abs=1e-6)
        # Coalesced: at most one /latent per feedback tick, however many moves were sent.
        assert mirror.count["/latent"] <= 1 + (elapsed + 0.5) * RATE + 1
        assert mirror.joined.get(me) == "mover"
        # Saying hello again under the same name (a client's keep-alive) announces nothing; a new name does.
        # (Counted for the mover only: clients of earlier tests on this server may leave meanwhile.)
        announced = mirror.about[me]
        assert mover.request("/hello", "mover").params == [me, "mover"]
        mirror.drain()
        assert mirror.about[me] == announced
        assert mover.request("/hello", "mover too").params == [me, "mover too"]
        mirror.drain()
        assert mirror.about[me] == announced + 1 and mirror.joined[me] == "mover too"
        # A late joiner gets the same state at once.
        late = TcpOscClient(srv.host, srv.port)
        try:
            _, late_mirror = subscribe(late, "late")
            late_mirror.drain()
            assert late_mirror.state[("/latent",)] == pytest.approx(mirror.state[("/latent",)])
            for k, v in mirror.state.items():
                if k[0] == "/param":
                    assert late_mirror.state[k] == pytest.approx(v), k
            assert late_mirror.cursors[me] == pytest.approx(mirror.cursors[me])
        finally:
            late.close()
    finally:
        watcher.close()
        mover.close()


def test_status_feedback_counts_what_fanning_out_cost(srv: ServerProc) -> None:
    """/status/feedback over UDP (its reply fits a passer-by's budget): ticks grow as a subscriber is fed."""
    def counters(c: OscClient) -> dict[str, Any]:
        args = c.request("/status/feedback").params
        return dict(zip(args[::2], args[1::2], strict=True))

    watcher, mover = TcpOscClient(srv.host, srv.port), srv.client()
    try:
        before = counters(mover)
        assert set(before) == {"subscribers", "ticks", "tick_ms", "slow_ticks", "sent", "coalesced"}
        _, mirror = subscribe(watcher, "counted")
        mirror.drain()
        mover.send("/latent", 0.75, 0.5)
        mover.sync()
        mirror.drain()
        after = counters(mover)
        assert after["subscribers"] >= 1
        assert after["ticks"] >= before["ticks"] + 2  # the snapshot, then the move
        assert after["sent"] > before["sent"] and after["tick_ms"] >= before["tick_ms"]
        assert 0 <= after["slow_ticks"] <= after["ticks"]
    finally:
        watcher.close()
        mover.close()


def test_status_runtime_reports_the_collector_with_startup_frozen(srv: ServerProc) -> None:
    """The server froze what startup built (a full collection never walks the models again), and
    /status/runtime counts the collections since: a full one among them takes the collector's time."""
    with srv.client() as c:
        args = c.request("/status/runtime").params
    got = dict(zip(args[::2], args[1::2], strict=True))
    assert set(got) == {"frozen", "collections", "full_collections", "gc_ms", "gc_max_ms", "slow_collections"}
    assert got["frozen"] > 10_000  # torch, the models, the tables: far more than a bare interpreter's
    assert 0 <= got["full_collections"] <= got["collections"]
    assert 0.0 <= got["gc_max_ms"] <= got["gc_ms"] or got["collections"] == 0
    assert 0 <= got["slow_collections"] <= got["collections"]


def test_udp_notify_needs_hello(srv: ServerProc) -> None:
    with srv.client() as c:
        c.send("/notify", 1)
        assert "/hello NAME first" in c.expect("/fail").params[1]


def test_thirty_two_clients_play_together_and_everyone_ends_in_the_same_state(srv: ServerProc) -> None:
    """16 UDP and 16 TCP clients moving at 60 Hz and playing notes; 8 vanish mid-note; 8 subscribe."""
    base = voices(srv, 0)
    rng = random.Random(20)
    clients: list[OscClient] = []
    for i in range(32):
        c: OscClient = TcpOscClient(srv.host, srv.port) if i % 2 else srv.client()
        c.request("/hello", f"player {i}")
        clients.append(c)
    subscribers = clients[:8]
    mirrors = []
    for c in subscribers:
        c.send("/notify", 1)
        c.expect("/done")
        m = Mirror(c)
        mirrors.append(m)
    threads = [threading.Thread(target=m.run, daemon=True) for m in mirrors]
    for t in threads:
        t.start()
    vanishers = clients[24:]
    stop = time.monotonic() + 3.0
    errors: list[BaseException] = []

    def play(i: int, c: OscClient) -> None:
        try:
            k = 0
            key = 40 + i
            while time.monotonic() < stop:
                c.send("/latent", rng.random(), rng.random())
                if k % 30 == 0:
                    c.send("/note", key, 90)
                elif k % 30 == 15 and c not in vanishers:
                    c.send("/note", key, 0)
                k += 1
                time.sleep(1 / 60)
            if c in vanishers:
                if isinstance(c, TcpOscClient):
                    c.close()  # gone mid-note; the UDP ones just go silent
            else:
                c.send("/note", key, 0)
        except BaseException as e:
            errors.append(e)

    players = [threading.Thread(target=play, args=(i, c)) for i, c in enumerate(clients[8:], start=8)]
    for t in players:
        t.start()
    for t in players:
        t.join()
    assert not errors
    final = clients[8]
    final.send("/latent", 0.125, 0.875)
    final.sync()
    # Feedback goes out on the server's tick and the mirrors read it in threads of their own: on a
    # loaded host the last of it can take longer than a fixed pause, so wait until it has come.
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline and any(
        m.state.get(("/latent",)) != pytest.approx([0.125, 0.875]) for m in mirrors
    ):
        time.sleep(0.05)
    time.sleep(0.5)
    for m in mirrors:
        m.stop.set()
    for t in threads:
        t.join()
    # Every subscriber ends with the server's state: compare with a fresh subscriber's snapshot.
    with TcpOscClient(srv.host, srv.port) as fresh:
        _, truth = subscribe(fresh, "referee")
        truth.drain()
    for m in mirrors:
        assert m.state[("/latent",)] == pytest.approx([0.125, 0.875])
        for k, v in truth.state.items():
            assert m.state.get(k) == pytest.approx(v), k
        assert m.count.get("/latent", 0) <= 3.5 * RATE + 2  # coalesced to the feedback rate
    # No note sounds after its client vanished (UDP ones leave after the timeout).
    assert voices(srv, base, timeout=TIMEOUT + 8.0) == base
    for c in clients:
        c.close()


def test_lan_policy_allow_list_and_rate_limit(tmp_path: Path) -> None:
    # Loopback outside the allow list: every packet dropped unanswered, every connection closed.
    (tmp_path / "closed").mkdir()
    s = start_server(tmp_path / "closed", sessions={"allow": ["10.0.0.0/8"]})
    try:
        with s.client() as c:
            c.send("/status")
            with pytest.raises(TimeoutError):
                c.recv(1.0)
        with TcpOscClient(s.host, s.port) as t:
            t.send("/status")
            with pytest.raises((ConnectionError, OSError)):
                t.recv(5.0)
    finally:
        s.stop()
    # A client over its rate limit: answered with a /fail (once a second), the rest dropped.
    (tmp_path / "limited").mkdir()
    s = start_server(tmp_path / "limited", sessions={"admin": [], "rate_limit": 50, "rate_burst": 20})
    try:
        with s.client() as c:
            for k in range(400):
                c.send("/latent", (k % 100) / 100, 0.5)
            fails = []
            while True:
                try:
                    m = c.recv(1.0)
                except TimeoutError:
                    break
                fails.append(m.params[1])
            assert 1 <= len(fails) <= 3 and "rate limit" in fails[0]
            time.sleep(0.5)  # the bucket refills: the client plays again
            assert c.request("/version").params[0] == "timbrespace"
    finally:
        s.stop()


def test_lock_refuses_the_second_mover_until_the_first_lets_go(tmp_path: Path) -> None:
    hold = 0.5
    s = start_server(tmp_path, layers=[{"collision": "lock", "hold": hold}])
    try:
        with s.client() as a, s.client() as b:
            a_id = a.request("/hello", "ann").params[0]
            b.request("/hello", "bob")
            a.send("/latent", 0.2, 0.2)
            a.sync()
            b.send("/latent", 0.9, 0.9)
            fail = b.expect("/fail").params
            assert fail[0] == "/latent" and f"held by ann (id {a_id})" in fail[1] and "collision: lock" in fail[1]
            a.send("/latent", 0.3, 0.2)  # the holder moves on
            a.sync()
            time.sleep(hold + 0.2)  # ann stops moving for longer than the hold
            b.send("/latent", 0.9, 0.9)
            b.sync()  # /synced, no /fail: bob holds the point now
            a.send("/latent", 0.1, 0.1)
            assert "held by bob" in a.expect("/fail").params[1]
    finally:
        s.stop()


def test_blend_sounds_the_mean_of_everyone_touching_the_point(tmp_path: Path) -> None:
    hold = 0.5
    s = start_server(tmp_path, sessions={"feedback_rate": 100.0}, layers=[{"collision": "blend", "hold": hold}])
    watcher, a, b = TcpOscClient(s.host, s.port), s.client(), s.client()
    try:
        _, mirror = subscribe(watcher, "watcher")
        mirror.drain()
        a.request("/hello", "ann")
        _, b_mirror = subscribe(b, "bob")
        b_mirror.drain()
        a.send("/latent", 0.2, 0.2)
        a.sync()
        b.send("/latent", 0.8, 0.6)
        a.sync()  # not b's: its sync() would read past (and drop) the feedback it is sent meanwhile
        mirror.drain(0.5)
        b_mirror.drain(0.5)
        # The patch map is affine in its latent: the mean point is the mean of the latent points.
        assert mirror.state[("/latent",)] == pytest.approx([0.5, 0.4], abs=1e-6)
        assert b_mirror.state[("/latent",)] == pytest.approx([0.5, 0.4], abs=1e-6)  # the mover hears it too
        blended = {k: v for k, v in mirror.state.items() if k[0] == "/param"}
        # Once both have let go, one player alone at the mean point sounds the same patch.
        time.sleep(hold + 0.2)
        a.send("/latent", 0.1, 0.9)
        a.sync()
        time.sleep(hold + 0.2)
        b.send("/latent", 0.5, 0.4)
        b.sync()
        mirror.drain(0.5)
        assert mirror.state[("/latent",)] == pytest.approx([0.5, 0.4], abs=1e-6)
        for k, v in blended.items():
            p = params.spec(k[1])
            assert mirror.state[k][0] == pytest.approx(v[0], abs=1e-4 * (p.maximum - p.minimum)), k
    finally:
        for c in (watcher, a, b):
            c.close()
        s.stop()


def test_clients_pages_fit_a_udp_reply_whoever_asks(srv: ServerProc) -> None:
    # A UDP client that said /hello was given 8 KB pages, which its reply budget then dropped.
    members = [srv.client() for _ in range(20)]
    try:
        names = {m.request("/hello", f"member number {i:02d}").params[0] for i, m in enumerate(members)}
        asker = members[0]
        seen: set[int] = set()
        start, total = 0, 1
        while start < total:
            asker.send("/clients", start)
            m = asker.expect("/clients.reply")  # a /fail here would raise
            total, start, rest = m.params[0], m.params[1], m.params[2:]
            assert rest, "an empty page before the end"
            seen |= set(rest[::3])
            start += len(rest) // 3
        assert names <= seen
    finally:
        for m in members:
            m.send("/bye")
            m.close()
