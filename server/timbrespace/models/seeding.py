"""Reproducible training runs: seeded, deterministic kernels, a fixed thread count."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def reproducible(seed: int, threads: int) -> Iterator[None]:
    """Seed torch, make its kernels deterministic and fix its threads; restore them afterwards.

    Deterministic kernels and a fixed thread count make reruns bit-identical on one machine.
    """
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    old_threads = torch.get_num_threads()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(was_deterministic)
        torch.set_num_threads(old_threads)
