"""The garbage collector's bookkeeping (collector.py): startup frozen, collections counted."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from timbrespace import collector


@pytest.fixture
def unfrozen() -> Iterator[None]:
    yield
    gc.unfreeze()  # the test process's objects back in reach, as before the test


def test_freeze_startup_puts_what_is_alive_out_of_reach(unfrozen: None) -> None:
    alive = [[i] for i in range(1000)]  # tracked containers
    p = collector.pauses()
    frozen = collector.freeze_startup()
    assert frozen == gc.get_freeze_count() >= len(alive)
    tracked = {id(o) for o in gc.get_objects()}
    assert not any(id(x) in tracked for x in alive)  # a collection no longer walks them
    # startup's own collection is not a pause while serving: the counts start after it
    assert p.report()[2:] == ("collections", 0, "full_collections", 0, "gc_ms", 0.0, "gc_max_ms", 0.0,
                              "slow_collections", 0)


def test_pauses_count_each_collection_by_generation() -> None:
    p = collector.pauses()
    assert collector.pauses() is p  # one per process: every App reports the same
    before = dict(zip(p.report()[::2], p.report()[1::2], strict=True))
    gc.collect()
    gc.collect(0)
    after = dict(zip(p.report()[::2], p.report()[1::2], strict=True))
    assert after["full_collections"] == before["full_collections"] + 1
    assert after["collections"] >= before["collections"] + 2
    assert after["gc_ms"] > before["gc_ms"] and after["gc_max_ms"] >= before["gc_max_ms"]
    assert after["slow_collections"] >= before["slow_collections"]
