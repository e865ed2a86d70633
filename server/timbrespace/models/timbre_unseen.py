"""Instruments heard from recordings the model never heard (issue 17): the unseen-set figures.

Here, beside the models, because training writes them into the model card and training never
imports evaluation; ``evaluate.unseen`` reports them.

A set rendered from another SoundFont (TimGM6mb, never used for training) is encoded, and each note
is classified by the model's own instrument posterior over ``z_t`` (the argmax of its mixture
responsibilities): nothing is fitted on the unseen notes, so the figure says what the model knows
of the instrument, not what a probe could learn from the set. Instruments are matched by name
(the unseen manifest may list them in another order, or fewer of them).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from timbrespace.models.probes import macro_f1
from timbrespace.models.timbre_features import NoteSet, load_notes
from timbrespace.models.timbre_gmvae import TimbreGMVAE

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


def in_model_order(notes: NoteSet, instruments: list[str], what: str) -> NoteSet:
    """``notes`` with instrument indices in the model's order (matched by name); ``what`` names the set
    in the error when one of its instruments is not the model's."""
    missing = [i for i in notes.instruments if i not in instruments]
    if missing:
        raise ValueError(f"{what}: instruments {missing} are not the model's {instruments}")
    index = np.array([instruments.index(n) for n in notes.instruments], dtype=np.int64)
    return dataclasses.replace(notes, instrument=index[notes.instrument], instruments=list(instruments))


def unseen(model: TimbreGMVAE, model_instruments: list[str], notes: NoteSet, name: str) -> dict[str, Any]:
    """Accuracy, macro F1, per-instrument accuracy and the confusion matrix on every note of ``notes``."""
    truth = in_model_order(notes, model_instruments, f"unseen set {name}").instrument
    guesses = []
    with torch.inference_mode():
        for s in range(0, len(notes.logmel), 256):
            mu_t = model.encode(torch.as_tensor(notes.logmel[s : s + 256])).mu_t
            guesses.append(model.instrument_posterior(mu_t).argmax(1).numpy())
    guess = np.concatenate(guesses)
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
