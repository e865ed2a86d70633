"""The train/valid split: stratified per instrument, grouped by pitch, seeded.

As in the paper (section 3.1): 90% train / 10% valid with the same distribution of instruments in
both. The unit drawn is an (instrument, pitch) group, so every velocity (or take) of one pitch lands
on the same side and the valid set never holds a pitch the model saw in training.
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from collections.abc import Iterable

import numpy as np

from timbrespace.data.manifest import Split

VALID_FRACTION = 0.1


def split_groups(
    keys: Iterable[tuple[str, int]], seed: int = 0, valid_fraction: float = VALID_FRACTION
) -> dict[tuple[str, int], Split]:
    """Assign each distinct (instrument, pitch) key to "train" or "valid".

    Per instrument, ``round(valid_fraction * n)`` of its n pitches go to valid, at least one when
    it has two or more (so every instrument is represented on both sides). Each instrument draws
    from its own generator seeded by (seed, crc32 of its name): its split does not change when
    other instruments are added or removed.
    """
    if seed < 0:
        raise ValueError(f"seed = {seed} must be >= 0")
    if not 0.0 <= valid_fraction < 1.0:
        raise ValueError(f"valid_fraction = {valid_fraction} must be in [0, 1)")
    pitches: dict[str, set[int]] = defaultdict(set)
    for name, pitch in keys:
        pitches[name].add(pitch)
    out: dict[tuple[str, int], Split] = {}
    for name in sorted(pitches):
        ps = sorted(pitches[name])
        n_valid = round(valid_fraction * len(ps))
        if len(ps) >= 2 and valid_fraction > 0:
            n_valid = max(1, n_valid)
        rng = np.random.default_rng([seed, zlib.crc32(name.encode("utf-8"))])
        valid = {ps[int(i)] for i in rng.permutation(len(ps))[:n_valid]}
        for p in ps:
            out[(name, p)] = "valid" if p in valid else "train"
    return out
