"""The client registry: bounded, least recently heard forgotten first, pruned incrementally."""

from __future__ import annotations

from timbrespace.clients import ClientRegistry
from timbrespace.protocol.peer import Peer


def test_bounded_and_forgets_least_recently_heard() -> None:
    reg = ClientRegistry(limit=3, timeout=60.0)
    peers = [Peer("udp", "10.0.0.1", p) for p in range(5)]
    for t, p in enumerate(peers[:3]):
        reg.heard(p, float(t))
    reg.heard(peers[0], 3.0)  # heard again: now the most recent
    reg.heard(peers[3], 4.0)  # evicts peers[1], the least recently heard
    assert reg.count(5.0) == 3
    reg.heard(peers[4], 5.0)
    reg.heard(peers[1], 6.0)
    assert reg.count(6.0) == 3
    assert list(reg._last) == [("udp", "10.0.0.1", p, 0) for p in (3, 4, 1)]


def test_stale_clients_pruned_a_few_per_message_and_on_count() -> None:
    reg = ClientRegistry(limit=1000, timeout=10.0)
    for p in range(100):
        reg.heard(Peer("udp", "10.0.0.1", p), 0.0)
    fresh = Peer("tcp", "10.0.0.2", 1, 7)
    reg.heard(fresh, 20.0)  # drops a couple of the stale ones, not all
    assert 90 < len(reg) < 101
    assert reg.count(20.0) == 1
    assert reg.count(31.0) == 0
