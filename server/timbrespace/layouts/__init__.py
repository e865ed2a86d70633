"""Client layouts generated from the address declaration: TouchOSC, Max and Pure Data.

Every address, argument count and range in these files is read from
:data:`timbrespace.protocol.addresses.ADDRESSES`; ``python -m timbrespace.layouts`` rewrites them
under ``clients/`` and a test fails when the committed files drift from what this package writes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from timbrespace.fsutil import atomic_write_bytes
from timbrespace.layouts import maxpatch, puredata, touchosc
from timbrespace.layouts._spec import (
    CORNER_SETS,
    HOST,
    INSTRUMENTS,
    KEYS,
    LAYERS,
    PLAYER,
    PORT,
    PRESETS,
    RENEW_S,
    ROOT,
    VELOCITY,
    Z_DIMS,
    address,
    arg,
    bounds,
)
from timbrespace.protocol.addresses import ENGINES, MAPS

__all__ = ["CORNER_SETS", "ENGINES", "HOST", "INSTRUMENTS", "KEYS", "LAYERS", "MAPS", "PLAYER", "PORT", "PRESETS",
           "RENEW_S", "ROOT", "VELOCITY", "Z_DIMS", "address", "arg", "bounds", "outputs", "stale", "write_all"]


def outputs() -> dict[str, Callable[[], bytes]]:
    """Each generated file (relative to the repository root) and what renders it."""
    return {
        "clients/touchosc/timbrespace.tosc": touchosc.render,
        "clients/max/timbrespace.maxpat": maxpatch.render,
        "clients/puredata/timbrespace.pd": puredata.render,
    }


def write_all(root: Path = ROOT) -> list[Path]:
    """Write every layout under ``root``; the paths written."""
    written = []
    for rel, render in outputs().items():
        path = root / rel
        atomic_write_bytes(path, render())  # an editor never opens half a layout
        written.append(path)
    return written


def stale(root: Path = ROOT) -> list[str]:
    """Generated files under ``root`` that differ from what the generators write now."""
    out = []
    for rel, render in outputs().items():
        path = root / rel
        if not path.exists() or path.read_bytes() != render():
            out.append(rel)
    return out
