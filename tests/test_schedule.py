"""The scheduled-bundle store: per-client and global bounds, slices in (due, arrival) order."""

from __future__ import annotations

from timbrespace.protocol import schedule
from timbrespace.protocol.codec import Message
from timbrespace.protocol.peer import Peer
from timbrespace.protocol.schedule import Schedule

A, B = Peer("udp", "10.0.0.1", 1000), Peer("tcp", "10.0.0.2", 2000, 3)


def msgs(n: int, tag: str = "x") -> list[Message]:
    return [Message(f"/{tag}{i}", (i,), "i") for i in range(n)]


def test_a_client_filling_its_share_is_refused_and_others_are_not() -> None:
    s = Schedule(max_pending=10000)
    for _ in range(schedule.CLIENT_PENDING):
        assert s.add(10.0, msgs(1), A, 0.0) is None
    assert "this client" in (s.add(10.0, msgs(1), A, 0.0) or "")
    assert s.add(10.0, msgs(1), B, 0.0) is None
    big = [Message("/b", ("x" * 60000,), "s")] * (schedule.CLIENT_PENDING_BYTES // 60000 + 1)
    assert "bytes" in (s.add(10.0, big, B, 0.0) or "")
    assert s.add(10.0, msgs(1), B, 0.0) is None
    s.take(11.0, most=10**9)  # all ran: the shares are free again
    assert len(s) == 0 and s._bytes == 0 and not s._per_client and not s._per_host
    assert s.add(10.0, msgs(1), A, 0.0) is None


def test_one_host_with_many_ports_cannot_fill_the_schedule() -> None:
    s = Schedule(max_pending=10000)
    refused = [s.add(10.0, msgs(1), Peer("udp", "10.0.0.9", port), 0.0) for port in range(5000)]
    assert refused.count(None) == schedule.HOST_PENDING
    assert s.add(10.0, msgs(1), A, 0.0) is None  # another host is still served


def test_due_groups_run_in_slices_keeping_arrival_order() -> None:
    s = Schedule(max_pending=100)
    s.add(5.0, msgs(300, "a"), A, 0.0)
    s.add(5.0, msgs(300, "b"), B, 0.0)
    s.add(4.0, msgs(10, "c"), B, 0.0)  # earlier due time: runs first
    assert s.take(3.0) == []
    order = []
    while s.busy(6.0):
        got = s.take(6.0)
        assert 0 < len(got) <= schedule.FIRE_SLICE
        order += [m.address for m, _, _ in got]
    assert order == [f"/c{i}" for i in range(10)] + [f"/a{i}" for i in range(300)] + [f"/b{i}" for i in range(300)]
