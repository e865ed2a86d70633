"""Instruments heard from recordings the model never heard (issue 17): the unseen-set figures.

A set rendered from another SoundFont (TimGM6mb, never used for training) is encoded, and each note
is classified by the model's own instrument posterior over ``z_t`` (the argmax of its mixture
responsibilities): nothing is fitted on the unseen notes, so the figure says what the model knows
of the instrument, not what a probe could learn from the set. Instruments are matched by name
(the unseen manifest may list them in another order, or fewer of them).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from timbrespace.evaluate.timbre import latents
from timbrespace.models.probes import macro_f1
from timbrespace.models.timbre_features import NoteSet, load_notes
from timbrespace.models.timbre_gmvae import TimbreGMVAE
from timbrespace.models.timbre_space import TimbreSpace

#: Issue 17's targets on TimGM6mb: accuracy at least this, every instrument at least the second.
TARGET_ACCURACY = 0.85
TARGET_EACH = 0.6


def set_name(manifest: Path) -> str:
    """An unseen set's name: its SoundFont's stem, else its folder's name."""
    try:
        sf = json.loads(manifest.read_text()).get("soundfont", "")
    except (OSError, ValueError, AttributeError):
        sf = ""
    return Path(sf).stem if isinstance(sf, str) and sf else manifest.resolve().parent.name


def unseen(model: TimbreGMVAE, model_instruments: list[str], notes: NoteSet, name: str) -> dict[str, Any]:
    """Accuracy, macro F1, per-instrument accuracy and the confusion matrix on every note of ``notes``."""
    missing = [i for i in notes.instruments if i not in model_instruments]
    if missing:
        raise ValueError(f"unseen set {name}: instruments {missing} are not the model's {model_instruments}")
    truth = np.array([model_instruments.index(notes.instruments[k]) for k in notes.instrument], dtype=np.int64)
    zt, _ = latents(model, notes.logmel)
    with torch.inference_mode():
        guess = model.instrument_posterior(torch.as_tensor(zt, dtype=torch.float32)).argmax(1).numpy()
    per = {model_instruments[k]: float(np.mean(guess[truth == k] == k)) for k in sorted(set(truth.tolist()))}
    confusion = np.zeros((len(model_instruments), len(model_instruments)), dtype=np.int64)
    np.add.at(confusion, (truth, guess), 1)
    accuracy = float(np.mean(guess == truth))
    return {
        "set": name, "notes": len(truth), "manifest_sha256": notes.manifest_sha256,
        "accuracy": accuracy, "macro_f1": macro_f1(truth, guess), "per_instrument": per,
        "confusion": confusion.tolist(),
        "targets": {"accuracy": {"target": TARGET_ACCURACY, "met": accuracy >= TARGET_ACCURACY},
                    "each_instrument": {"target": TARGET_EACH, "met": min(per.values()) >= TARGET_EACH,
                                        "worst": min(per, key=lambda k: per[k])}},
    }


def measure_sets(model: TimbreGMVAE, instruments: list[str], manifests: Sequence[Path],
                 cache_dir: str | os.PathLike[str] | None) -> dict[str, Any]:
    """:func:`unseen` on each manifest's notes, by set name, without the confusion matrix (what a model
    card shows; ``eval timbre`` reports the matrix)."""
    out: dict[str, Any] = {}
    for path in manifests:
        name = set_name(path)
        figures = unseen(model, instruments, load_notes(path, cache_dir=cache_dir), name)
        out[name] = {k: v for k, v in figures.items() if k != "confusion"} | {"manifest": str(path)}
    return out


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
