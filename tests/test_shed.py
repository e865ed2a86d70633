"""What the UDP transport sheds while its socket backs up: the per-source time share, the buffer's fill."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from timbrespace.protocol.shed import Backlog, LoadShare


def test_a_source_over_its_share_of_the_time_is_over_and_the_others_are_not() -> None:
    load = LoadShare(window=1.0, share=0.5)
    # Over 0.6 s of wall time: the hog's datagrams took 0.45 s, the other's 0.01 s.
    for k in range(9):
        load.charge("hog", 0.05, 0.05 * (k + 1) + 0.1)
    load.charge("other", 0.01, 0.6)
    # The measure spans the window before (empty) and this one: 1.6 s, of which 0.45 s is 28 %.
    assert not load.over("hog", 0.6) and load.fraction("hog", 0.6) == pytest.approx(0.45 / 1.6)
    for k in range(9, 30):
        load.charge("hog", 0.05, 0.05 * (k + 1) + 0.1)
    # Past the first window (it rolled at 1.0 s): 1.5 s of 1.6 measured were the hog's.
    assert load.over("hog", 1.6) and load.fraction("hog", 1.6) == pytest.approx(1.0, abs=0.1)
    assert not load.over("other", 1.6) and not load.over("never heard", 1.6)


def test_a_source_that_stops_sending_falls_back_under_its_share() -> None:
    load = LoadShare(window=0.25, share=0.5)
    for k in range(10):
        load.charge("hog", 0.025, 0.025 * (k + 1))
    assert load.over("hog", 0.25)
    assert load.over("hog", 0.3)  # the window just ended still counts
    assert not load.over("hog", 0.6)  # two windows on: it has gone quiet
    assert load.fraction("hog", 10.0) == 0.0  # and after a long silence nothing of it is left


def test_the_table_of_sources_is_bounded_per_window() -> None:
    load = LoadShare(window=1.0, share=0.5, max_sources=3)
    for k in range(100):
        load.charge(("10.0.0.1", k), 0.9, 0.5)
    assert [load.over(("10.0.0.1", k), 0.5) for k in range(5)] == [True, True, True, False, False]
    load.charge(("10.0.0.1", 50), 0.9, 1.5)  # the next window has room again
    assert load.over(("10.0.0.1", 50), 1.5)


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    yield rx, tx
    rx.close()
    tx.close()


def test_the_backlog_is_the_kernels_count_of_what_waits_in_the_buffer(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    rx, tx = pair
    backlog = Backlog(rx, fraction=1 / 8)
    if not backlog.limit:
        pytest.skip("this platform's sockets do not report their fill (SO_MEMINFO)")
    size = rx.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    assert backlog.limit == size // 8
    assert backlog.queued() == 0 and not backlog.high()
    payload = b"x" * 8192
    n = backlog.limit // len(payload) + 2  # more than the limit, before overheads
    for _ in range(n):
        tx.sendto(payload, rx.getsockname())
    assert backlog.queued() >= n * len(payload)
    assert backlog.high()
    rx.setblocking(False)
    for _ in range(n):
        rx.recv(65536)
    assert backlog.queued() == 0 and not backlog.high()



def test_a_shed_source_is_told_once_a_second_not_for_every_datagram() -> None:
    load = LoadShare(window=0.25, share=0.5)
    said = []
    for k in range(175):  # 1.75 s of its datagrams, each 10 ms of the server's time
        now = 0.01 * (k + 1)
        load.charge("hog", 0.01, now)
        if k >= 25:
            said.append(load.shed("hog", now))
    assert all(over for over, _ in said)
    assert [k for k, (_, tell) in enumerate(said) if tell] == [0, 100]
    assert load.shed("other", 1.75) == (False, False)
