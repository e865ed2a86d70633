"""The unseen-set section of ``eval timbre``'s report (the figures: ``models.timbre_unseen``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from timbrespace.models.timbre_features import NoteSet
from timbrespace.models.timbre_space import TimbreSpace
from timbrespace.models.timbre_unseen import TARGET_ACCURACY, TARGET_EACH, set_name, unseen

__all__ = ["add_unseen", "markdown", "section", "set_name", "unseen"]


def markdown(entries: dict[str, dict[str, Any]]) -> list[str]:
    """The unseen-set section of the report: one table per model."""
    lines = ["", "## Unseen recordings", "",
             "Each note of a set no model was trained on, classified by the model's own instrument "
             f"posterior over z_t (nothing fitted). Targets (issue 17, TimGM6mb): accuracy >= {TARGET_ACCURACY}, "
             f"every instrument >= {TARGET_EACH}.", ""]
    for label, e in entries.items():
        worst = e["targets"]["each_instrument"]["worst"]
        lines += [f"**{label}** on {e['set']} ({e['notes']} notes): accuracy {e['accuracy']:.3f}, macro F1 "
                  f"{e['macro_f1']:.3f}; worst {worst} {e['per_instrument'][worst]:.2f}.", "",
                  "| instrument | " + " | ".join(e["per_instrument"]) + " |",
                  "| --- | " + " | ".join("---" for _ in e["per_instrument"]) + " |",
                  "| accuracy | " + " | ".join(f"{v:.2f}" for v in e["per_instrument"].values()) + " |", ""]
    return lines


def add_unseen(result: dict[str, Any], model_paths: Sequence[Path], sets: Sequence[tuple[str, NoteSet]]) -> None:
    """Each model's figures on each unseen set, into ``result["models"][label]["unseen"]``."""
    by_sha = {e["sha256"]: e for e in result["models"].values()}
    for path in model_paths:
        space = TimbreSpace.load(path, device="cpu")
        entry = by_sha.get(space.sha256)
        if entry is None:
            continue
        entry["unseen"] = {name: unseen(space.model, list(space.instruments), notes, name) for name, notes in sets}


def section(result: dict[str, Any]) -> list[str]:
    """The report's unseen-set section ([] when no unseen set was given)."""
    rows = {f"{label} / {name}": e for label, m in result["models"].items() for name, e in m.get("unseen", {}).items()}
    return markdown(rows) if rows else []
