"""Sessions in isolation: the client tables (bounded, members never evicted, rejoin) and feedback
(coalesced per subscriber and key, rate-bounded, the last value always sent)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from timbrespace.protocol.peer import Peer
from timbrespace.session.clients import CLIENT_TIMEOUT, Client, SessionFull, Sessions
from timbrespace.session.collision import Collision, PointHeld
from timbrespace.session.feedback import Feedback
from timbrespace.session.networks import NetworkError, Networks


def udp(port: int, host: str = "10.0.0.1") -> Peer:
    return Peer("udp", host, port)


def test_passers_by_bounded_and_least_recently_heard_forgotten_first() -> None:
    s = Sessions(passers=3, passer_timeout=60.0)
    peers = [udp(p) for p in range(5)]
    for t, p in enumerate(peers[:3]):
        s.heard(p, float(t))
    s.heard(peers[0], 3.0)  # heard again: now the most recent
    s.heard(peers[3], 4.0)  # evicts peers[1], the least recently heard
    assert s.count(5.0) == 3
    s.heard(peers[4], 5.0)
    s.heard(peers[1], 6.0)
    assert s.count(6.0) == 3
    assert list(s._passers) == [("udp", "10.0.0.1", p, 0) for p in (3, 4, 1)]


def test_stale_passers_pruned_a_few_per_message_and_on_count() -> None:
    s = Sessions(passers=1000, passer_timeout=10.0)
    for p in range(100):
        s.heard(udp(p), 0.0)
    s.heard(Peer("tcp", "10.0.0.2", 1, 7), 20.0)  # drops a couple of the stale ones, not all
    assert 90 < len(s) < 101
    assert s.count(20.0) == 1
    assert s.count(31.0) == 0


def test_status_counts_one_shot_senders_only_briefly() -> None:
    # Issue 19: every oscsend call (a new source port) counted as a client for a minute.
    from timbrespace.protocol.addresses import BY_PATH

    assert CLIENT_TIMEOUT <= 10.0
    s = Sessions()
    s.heard(udp(40001, "127.0.0.1"), 0.0)  # one oscsend call
    player = udp(40002, "127.0.0.1")
    t = 0.0
    while t < CLIENT_TIMEOUT - 1:  # a client playing: something every second
        s.heard(player, t)
        t += 1
    assert s.count(CLIENT_TIMEOUT - 0.5) == 2
    s.heard(player, CLIENT_TIMEOUT)
    assert s.count(CLIENT_TIMEOUT + 0.5) == 1
    assert f"senders heard from in the last {CLIENT_TIMEOUT:g} s" in BY_PATH["/status"].reply_doc


def test_members_are_never_evicted_by_newcomers_and_the_session_has_a_size() -> None:
    s = Sessions(max_clients=2, passers=4)
    a, b = s.heard(udp(1), 0.0), s.heard(udp(2), 0.0)
    s.hello(a, "ann", 0.0)
    s.join(b)
    for p in range(100, 200):  # a flood of new sources
        s.heard(udp(p), 1.0)
    assert s.heard(udp(1), 2.0) is a and s.heard(udp(2), 2.0) is b
    with pytest.raises(SessionFull, match="max_clients"):
        s.join(s.heard(udp(3), 2.0))
    assert s.refused == 1


def test_hello_gives_a_name_back_its_id_and_its_notes() -> None:
    s = Sessions()
    left: list[tuple[Client, str]] = []
    s.on_leave = lambda c, why: left.append((c, why))
    first = s.hello(s.heard(udp(5000), 0.0), "ann", 0.0)
    first.notes.add(("patch", 60))
    # The same player after a network drop: a new source address, the same name.
    again = s.hello(s.heard(udp(6000), 1.0), "ann", 1.0)
    assert again.id == first.id
    assert again.notes == {("patch", 60)}  # it can release what it started before the drop
    assert not left  # a rejoin is not a leave: nothing is released
    assert s.member(first.id) is again
    other = s.hello(s.heard(udp(7000), 1.0), "bob", 1.0)
    assert other.id != again.id


def test_udp_members_leave_after_the_timeout_and_tcp_ones_when_closed() -> None:
    s = Sessions(client_timeout=60.0)
    left: list[str] = []
    s.on_leave = lambda c, why: left.append(c.label)
    quiet = s.hello(s.heard(udp(1), 0.0), "quiet", 0.0)
    busy = s.hello(s.heard(udp(2), 0.0), "busy", 0.0)
    conn = Peer("tcp", "10.0.0.9", 4000, 3)
    tcp = s.hello(s.heard(conn, 0.0), "tcp", 0.0)
    s.heard(udp(2), 59.0)
    s.housekeeping(61.0)
    assert left == ["quiet"] and not quiet.member and busy.member and tcp.member  # TCP: no silence timeout
    s.disconnected(conn)
    assert left == ["quiet", "tcp"]


def test_a_member_that_owns_nothing_any_more_settles_back() -> None:
    s = Sessions()
    c = s.heard(udp(1), 0.0)
    s.join(c)
    c.notes.add(("patch", 60))
    s.settle(c)
    assert c.member  # still holds a note
    c.notes.clear()
    s.settle(c)
    assert not c.member
    named = s.hello(s.heard(udp(2), 0.0), "ann", 0.0)
    s.settle(named)
    assert named.member  # a name is something to keep


def test_networks_parse_and_match() -> None:
    nets = Networks(["10.0.0.0/8", "::1/128", "192.168.1.7"])
    assert "10.2.3.4" in nets and "::1" in nets and "192.168.1.7" in nets and "::ffff:10.0.0.1" in nets
    assert "11.0.0.1" not in nets and "192.168.1.8" not in nets and "not-an-address" not in nets
    with pytest.raises(NetworkError, match=r"'10\.0\.0\.0/33' is not a network"):
        Networks(["10.0.0.0/33"])


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[int, str, tuple[Any, ...]]] = []

    def __call__(self, c: Client, messages: list[tuple[str, tuple[Any, ...]]]) -> None:
        self.sent += [(c.id, address, args) for address, args in messages]


def subscribers(n: int, feedback: Feedback, protocol: str = "tcp") -> list[Client]:
    out = []
    for i in range(n):
        c = Client(i + 1, Peer(protocol, "10.0.0.1", 1000 + i, i), False, 0.0, name=f"c{i}")  # type: ignore[arg-type]
        feedback.subscribe(c, 0.0, [])
        out.append(c)
    return out


def test_feedback_coalesces_a_flood_into_the_rate_and_the_last_value_arrives() -> None:
    rec = Recorder()
    fb = Feedback(rec, rate=30.0)
    state = {"xy": (0.0, 0.0)}
    fb.state_of = lambda layer: {("/latent",): ("/latent", state["xy"])}
    mover, watcher = subscribers(2, fb)
    fb.snapshot(0)
    t = 0.0
    sent_at: list[float] = []
    for k in range(1, 601):  # 1000 moves a second for 0.6 s
        t = k / 1000.0
        state["xy"] = (k / 600.0, 0.5)
        fb.changed(0, ("/latent",), mover, t)
        n = len(rec.sent)
        fb.flush(t)
        sent_at += [t] * (len(rec.sent) - n)
    fb.flush(1.0)  # after the flood: what is pending goes out
    to_watcher = [args for cid, _, args in rec.sent if cid == watcher.id]
    assert to_watcher[-1] == (1.0, 0.5)  # the last value always arrives
    assert len(to_watcher) <= 0.6 * 30 + 2  # never more than the rate (one per grid cell)
    assert not [1 for cid, _, _ in rec.sent if cid == mover.id]  # no echo of one's own moves


def test_feedback_sends_what_a_change_moved_besides_and_others_changes_to_the_author() -> None:
    rec = Recorder()
    fb = Feedback(rec)
    state: dict[Any, Any] = {("/latent",): ("/latent", (0.5, 0.5)), ("/param", "cutoff"): ("/param", ("cutoff", 1.0))}
    fb.state_of = lambda layer: dict(state)
    a, _ = subscribers(2, fb)
    fb.snapshot(0)
    # a loads a preset: the point and a parameter move; a hears the parameter, not its own key.
    state[("/latent",)] = ("/latent", (0.1, 0.2))
    state[("/param", "cutoff")] = ("/param", ("cutoff", 0.3))
    fb.changed(0, ("/patch/load.reply",), a, 0.0)
    fb.flush(0.0)
    got = {(cid, address) for cid, address, _ in rec.sent}
    assert got == {(1, "/latent"), (1, "/param"), (2, "/latent"), (2, "/param")}


def test_feedback_counts_the_ticks_that_fan_out_and_reports_them() -> None:
    rec = Recorder()
    fb = Feedback(rec, rate=30.0)
    state = {"xy": (0.0, 0.0)}
    fb.state_of = lambda layer: {("/latent",): ("/latent", state["xy"])}
    mover, _ = subscribers(2, fb)
    fb.flush(0.0)  # the snapshots (empty here): nothing pending, no tick
    assert fb.ticks == 0
    fb.snapshot(0)
    for k in range(1, 4):  # one move per grid cell: each flush sends to the watcher
        state["xy"] = (k / 4.0, 0.5)
        fb.changed(0, ("/latent",), mover, k / 30.0)
        fb.flush(k / 30.0)
    fb.flush(0.2)  # nothing changed: a flush that sends nothing is no tick
    assert fb.ticks == 3 and 0 <= fb.slow_ticks <= fb.ticks and fb.tick_s >= 0.0
    report = dict(zip(fb.report()[::2], fb.report()[1::2], strict=True))
    assert report == {"subscribers": 2, "ticks": 3, "tick_ms": fb.tick_s * 1000.0, "slow_ticks": fb.slow_ticks,
                      "sent": 3, "coalesced": 0}


def test_the_delivery_sends_a_flushs_packets_and_forgets_its_encodings_when_it_ends() -> None:
    """Packets go out when the flush ends (handed over group by group, the fan-out thread and the
    flush took turns at the interpreter); encodings live one flush (kept longer, thousands of
    message tuples fed the collector)."""
    from timbrespace.session.delivery import Delivery

    d = Delivery()
    sent: list[bytes] = []
    d.send_packet = lambda peer, data: sent.append(data)
    ends: list[tuple[int, int]] = []

    def flushed() -> None:
        ends.append((len(d._encoded), len(sent)))  # encoded once for its three subscribers, nothing sent yet
        d.flushed()

    fb = Feedback(rate=30.0, deliver=d.feedback, flushed=flushed)
    state = {"xy": (0.5, 0.5)}
    fb.state_of = lambda layer: {("/latent",): ("/latent", state["xy"])}
    subscribers(3, fb)
    fb.snapshot(0)
    fb.flush(0.0)
    assert ends == []  # nothing delivered: no flush to end
    state["xy"] = (0.25, 0.5)
    fb.touch(0, 0.1)
    fb.flush(0.1)
    assert ends == [(1, 0)] and len(sent) == 3 and len(set(sent)) == 1
    assert d._encoded == {}


def test_a_rejoining_player_keeps_every_finger_its_old_address_held() -> None:
    """Same name from a new address: the old identity's fingers move over, one whose id the new
    address already uses under a free id (still owned: released by /panic or leaving, never stuck)."""
    from timbrespace.session.clients import Touch

    s = Sessions()
    old = s.hello(s.heard(udp(1), 0.0), "ann", 0.0)
    old.touches = {0: Touch(0, "timbre", 1, (0.1, 0.1)), 1: Touch(0, "timbre", 2, (0.2, 0.2))}
    new = s.heard(udp(2), 1.0)
    new.touches = {0: Touch(0, "timbre", 3, (0.3, 0.3))}
    s.hello(new, "ann", 1.0)
    assert sorted(t.token for t in new.touches.values()) == [1, 2, 3]
    assert new.touches[0].token == 3 and new.touches[1].token == 2 and old.touches == {}


def test_udp_subscriptions_expire_unless_renewed() -> None:
    rec = Recorder()
    fb = Feedback(rec, udp_period=60.0)
    (c,) = subscribers(1, fb, "udp")
    fb.flush(30.0)
    assert fb.subscribed(c)
    fb.subscribe(c, 30.0, [])  # renewed
    fb.flush(89.0)
    assert fb.subscribed(c)
    fb.flush(91.0)
    assert not fb.subscribed(c)


def test_collision_policies_last_lock_and_blend() -> None:
    s = Sessions()
    a, b, c = (s.hello(s.heard(udp(p), 0.0), n, 0.0) for p, n in ((1, "ann"), (2, "bob"), (3, "cy")))
    last = Collision("last", hold=1.0)
    assert last.move(a, (0.1, 0.1), 0.0) == ((0.1, 0.1),) and last.move(b, (0.9, 0.9), 0.1) == ((0.9, 0.9),)

    lock = Collision("lock", hold=1.0)
    lock.move(a, (0.1, 0.1), 0.0)
    lock.move(a, (0.2, 0.1), 0.5)  # the holder moves on
    with pytest.raises(PointHeld, match=r"held by ann \(id \d+\) until it stops moving for 1 s"):
        lock.move(b, (0.9, 0.9), 1.4)
    assert lock.move(b, (0.9, 0.9), 1.5) == ((0.9, 0.9),)  # ann has not moved for 1 s: bob takes it
    with pytest.raises(PointHeld, match="held by bob"):
        lock.move(a, (0.3, 0.3), 1.6)
    lock.forget(b)  # bob left
    assert lock.move(a, (0.3, 0.3), 1.7) == ((0.3, 0.3),) and lock.refused == 2

    blend = Collision("blend", hold=1.0)
    blend.move(a, (0.0, 0.0), 0.0)
    blend.move(b, (1.0, 0.5), 0.2)
    assert set(blend.move(c, (0.5, 1.0), 0.9)) == {(0.0, 0.0), (1.0, 0.5), (0.5, 1.0)}
    assert blend.touching(1.1) == 2  # ann's touch ended a second after her move
    assert set(blend.move(b, (1.0, 1.0), 1.15)) == {(1.0, 1.0), (0.5, 1.0)}
    with pytest.raises(ValueError, match="expected one of last, lock, blend"):
        Collision("first")  # type: ignore[arg-type]


def test_cursors_keep_within_each_subscribers_budget_and_the_newest_arrive() -> None:
    # 40 players moving at 60 Hz: 39 cursors for each subscriber, 1,170 a second at the feedback
    # rate; the budget (100/s here) thins them, and every cursor's last position still arrives.
    rec = Recorder()
    budget, seconds = 100.0, 2.0
    fb = Feedback(rec, rate=30.0, cursor_budget=budget)
    players = subscribers(40, fb)
    quiet = Client(99, Peer("tcp", "10.0.0.2", 1, 99), False, 0.0, name="quiet")  # type: ignore[arg-type]
    fb.subscribe(quiet, 0.0, [], cursors=False)  # a page that draws no cursors
    fb.state_of = lambda layer: {}
    t = 0.0
    for step in range(int(seconds * 60)):
        t = step / 60.0
        for p in players:
            fb.publish(0, ("/cursor", p.id), ("/cursor", (p.id, p.label, t, 0.5)), t, source=p)
        fb.flush(t)
    end = t
    for k in range(1, 200):  # long enough for what waits to go out
        fb.flush(end + k / 30.0)
    first = players[0]
    mine = [args for cid, address, args in rec.sent if cid == first.id and address == "/cursor"]
    assert len(mine) <= budget * (seconds + 1.0) + 39  # one burst of 39 allowed at the start
    assert len(mine) < 0.5 * 39 * 30 * seconds  # far fewer than the feedback rate would send
    last = {args[0]: args[2] for args in mine}
    assert set(last) == {p.id for p in players[1:]} and all(v == end for v in last.values())
    assert not [1 for cid, address, _ in rec.sent if cid == quiet.id and address == "/cursor"]
    # With few players nothing is thinned: each cursor at the feedback rate.
    rec2 = Recorder()
    fb2 = Feedback(rec2, rate=30.0, cursor_budget=budget)
    a, b = subscribers(2, fb2)
    fb2.state_of = lambda layer: {}
    for step in range(60):
        t = step / 60.0
        fb2.publish(0, ("/cursor", a.id), ("/cursor", (a.id, a.label, t, 0.5)), t, source=a)
        fb2.flush(t)
    to_b = [1 for cid, address, _ in rec2.sent if cid == b.id and address == "/cursor"]
    assert len(to_b) >= 29


def test_each_tick_sends_one_slice_of_the_cursors_to_every_subscriber() -> None:
    """With many players the cursors are dealt into slices by id and a tick sends one slice to
    everyone (one group, encoded once), not every cursor to a cohort: each delivery of a tick holds
    at most the budget's share of cursors, every subscriber is in it, and a cursor that stopped
    moving still reaches a subscriber that was not due when its slice went out."""
    calls: list[tuple[float, int, int]] = []  # (time, cursors in the delivery, subscribers it reached)
    now = [0.0]
    fb = Feedback(rate=30.0, cursor_budget=100.0, deliver=lambda m, s, p: calls.append(
        (now[0], sum(1 for a, _ in m if a == "/cursor"), len(s) + len(p))))
    fb.state_of = lambda layer: {}
    players = subscribers(40, fb)
    slices = math.ceil(40 * 30.0 / 100.0)  # 40 cursors, at most 100/30 a tick for each subscriber
    for step in range(60):
        now[0] = t = 1.0 + step / 60.0
        for p in players:
            fb.publish(0, ("/cursor", p.id), ("/cursor", (p.id, p.label, t, 0.5)), t, source=p)
        fb.flush(t)
    per_tick: dict[float, list[tuple[int, int]]] = {}
    for t, n, reached in calls:
        per_tick.setdefault(t, []).append((n, reached))
    assert len(per_tick) >= 25
    for t, deliveries in per_tick.items():
        assert len(deliveries) == 1, f"{t}: {deliveries}: one group a tick"
        n, reached = deliveries[0]
        assert n <= math.ceil(40 / slices) and reached == 40

    # Every subscriber ends with every other cursor's last position, whoever was due when.
    rec = Recorder()
    fb2 = Feedback(rec, rate=30.0, cursor_budget=100.0)
    fb2.state_of = lambda layer: {}
    players = subscribers(40, fb2)
    late = players[5]
    for step in range(30):
        t = 1.0 + step / 60.0
        for p in players:
            fb2.publish(0, ("/cursor", p.id), ("/cursor", (p.id, p.label, t, 0.5)), t, source=p)
        fb2.flush(t)
        fb2._subs[late.key].next_send = t + 0.2  # not due for a while: it misses slices as they go
    end = t
    for k in range(1, 3 * slices):
        fb2.flush(end + k / 30.0)
    for c in players:
        last = {args[0]: args[2] for cid, address, args in rec.sent if cid == c.id and address == "/cursor"}
        assert last == {p.id: end for p in players if p is not c}, f"client {c.id}"


def test_a_change_goes_out_once_for_every_subscriber_that_did_not_make_it() -> None:
    """The shared fan-out: watchers that made no change are one group, sent the same messages
    (encoded once by the server); the mover, whose only changes are its own, is sent nothing;
    a mover whose blend the layer echoes gets a personal copy without its cursor."""
    calls: list[tuple[list[Any], list[int], list[tuple[int, list[int]]]]] = []
    fb = Feedback(rate=30.0, deliver=lambda m, s, p: calls.append(
        (list(m), [c.id for c in s], [(c.id, list(skip)) for c, skip in p])))
    state = {"xy": (0.5, 0.5)}
    fb.state_of = lambda layer: {("/latent",): ("/latent", state["xy"])}
    mover, *watchers = subscribers(11, fb)
    fb.snapshot(0)
    fb.flush(0.0)
    assert calls == []  # empty snapshots, nothing changed
    state["xy"] = (0.3, 0.4)
    cursor = ("/cursor", (mover.id, mover.label, 0.3, 0.4))
    fb.publish(0, ("/cursor", mover.id), cursor, 0.1, source=mover)
    fb.changed(0, ("/latent",), mover, 0.1)
    fb.flush(0.1)
    assert calls == [([("/latent", (0.3, 0.4)), cursor], [w.id for w in watchers], [])]
    calls.clear()
    moved = ("/cursor", (mover.id, mover.label, 0.6, 0.4))
    fb.publish(0, ("/cursor", mover.id), moved, 0.2, source=mover)
    fb.publish(0, ("/latent",), ("/latent", (0.45, 0.4)), 0.2, source=mover, echo=True)  # a blend
    fb.flush(0.2)
    assert calls == [([("/latent", (0.45, 0.4)), moved], [w.id for w in watchers], [(mover.id, [1])])]
    assert fb.sent == 2 * 10 + 2 * 10 + 1
