"""The unseen-set section of ``eval timbre``'s report.

Besides the model's own posterior (``models.timbre_unseen``), the held-out figures asked of notes no
model was trained on, with nothing fitted on them:

* probes: the Table 1 probes, fitted on the training notes' posterior means, scored on the unseen notes;
* reconstruction: each unseen note decoded from its own latents, judged by the CNN (trained on the real
  training notes) and by CREPE, beside the judge's verdict on the notes themselves;
* transfer: the paper's pairs on unseen source notes (what live input transfer does to a microphone).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from timbrespace.evaluate.classifier import Classifier
from timbrespace.evaluate.timbre import Settings, features_of, latents, pitch_check, render_notes, subset, transfer
from timbrespace.models.probes import macro_f1, probe_f1
from timbrespace.models.timbre_features import NoteSet
from timbrespace.models.timbre_gmvae import TimbreGMVAE
from timbrespace.models.timbre_space import TimbreSpace
from timbrespace.models.timbre_unseen import TARGET_ACCURACY, TARGET_EACH, in_model_order, set_name, unseen

__all__ = ["add_unseen", "beyond_posterior", "markdown", "section", "set_name", "unseen"]

#: Unseen notes per instrument decoded for reconstruction and moved for transfer (seeded), as the
#: held-out split has about a dozen per instrument.
PER_INSTRUMENT = 12


def beyond_posterior(model: TimbreGMVAE, instruments: list[str], train: NoteSet, notes: NoteSet, clf: Classifier,
                     settings: Settings, per_instrument: int | None = PER_INSTRUMENT) -> dict[str, Any]:
    """Probes, reconstruction and transfer on the unseen ``notes`` (see the module's docstring)."""
    seen = in_model_order(train, instruments, "the training notes")
    unseen_notes = in_model_order(notes, instruments, "the unseen set")
    tr = np.flatnonzero(seen.train)
    zt_tr, zp_tr = latents(model, seen.logmel[tr])
    zt, zp = latents(model, unseen_notes.logmel)
    probes: dict[str, Any] = {}
    for name, a, b, ya, yb in (
        ("instrument_from_zt", zt_tr, zt, seen.instrument[tr], unseen_notes.instrument),
        ("pitch_from_zp", zp_tr, zp, seen.pitch[tr], unseen_notes.pitch),
        ("pitch_from_zt", zt_tr, zt, seen.pitch[tr], unseen_notes.pitch),
    ):
        f1, acc = probe_f1(a, ya, b, yb, seed=settings.seed, max_iter=settings.probe_iter)
        probes[name] = {"f1": f1, "accuracy": acc}
    idx = subset(np.arange(len(unseen_notes)), unseen_notes.instrument, per_instrument, settings.seed)
    truth = unseen_notes.instrument[idx]
    audio = render_notes(model, zt[idx], zp[idx], unseen_notes.pitch[idx], unseen_notes.velocity[idx])
    heard = clf.predict(features_of(model, audio))
    real = clf.predict(unseen_notes.logmel[idx])
    reconstruction = {
        "notes": len(idx),
        "instrument_f1": macro_f1(truth, heard), "instrument_accuracy": float(np.mean(heard == truth)),
        "judge_on_the_notes_f1": macro_f1(truth, real),
        "judge_on_the_notes_accuracy": float(np.mean(real == truth)),
        "pitch": pitch_check(audio, unseen_notes.pitch[idx], model.spec.sample_rate, settings.crepe_hop_s),
    }
    moved = transfer(model, unseen_notes, idx, clf, dataclasses.replace(settings, transfer_per_source=None))
    return {"probes": probes, "reconstruction": reconstruction, "transfer": moved}


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
        lines += _beyond(e)
    return lines


def _beyond(e: dict[str, Any]) -> list[str]:
    """Probes, reconstruction and transfer of one model on one set ([] when not measured)."""
    if "probes" not in e:
        return []
    pr, rec, moved = e["probes"], e["reconstruction"], e["transfer"]
    out = ["Probes fitted on the training notes' posterior means, scored on these notes (macro F1): "
           f"instrument from z_t {pr['instrument_from_zt']['f1']:.3f}, pitch from z_p "
           f"{pr['pitch_from_zp']['f1']:.3f}, pitch from z_t {pr['pitch_from_zt']['f1']:.3f}.", "",
           f"Reconstruction ({rec['notes']} notes, each decoded from its own latents): the judge hears its "
           f"instrument at F1 {rec['instrument_f1']:.3f} (on the notes themselves: "
           f"{rec['judge_on_the_notes_f1']:.3f}); CREPE: {rec['pitch']['within_25c']:.1%} within 25 cents.", "",
           "| transfer (these notes as the source) | notes | judge's P(target) at alpha "
           + " / ".join(f"{a:g}" for a in moved["alphas"]) + " |", "| --- | --- | --- |"]
    out += [f"| {p['source']} -> {p['target']} | {p['notes']} | "
            + " ".join(f"{v:.2f}" for v in p["target_posterior"]) + " |" for p in moved["pairs"]]
    return [*out, "", f"Transferred notes within 25 cents (CREPE): {moved['pitch']['within_25c']:.1%}.", ""]


def add_unseen(result: dict[str, Any], model_paths: Sequence[Path], sets: Sequence[tuple[str, NoteSet]],
               train: NoteSet | None = None, clf: Classifier | None = None, settings: Settings | None = None,
               per_instrument: int | None = PER_INSTRUMENT) -> None:
    """Each model's figures on each unseen set, into ``result["models"][label]["unseen"]``; with the
    training notes, the judge and the settings, :func:`beyond_posterior`'s too."""
    by_sha = {e["sha256"]: e for e in result["models"].values()}
    for path in model_paths:
        space = TimbreSpace.load(path, device="cpu")
        entry = by_sha.get(space.sha256)
        if entry is None:
            continue
        entry["unseen"] = {}
        for name, notes in sets:
            figures = unseen(space.model, list(space.instruments), notes, name)
            if train is not None and clf is not None and settings is not None:
                figures |= beyond_posterior(space.model, list(space.instruments), train, notes, clf, settings,
                                            per_instrument)
            entry["unseen"][name] = figures


def section(result: dict[str, Any]) -> list[str]:
    """The report's unseen-set section ([] when no unseen set was given)."""
    rows = {f"{label} / {name}": e for label, m in result["models"].items() for name, e in m.get("unseen", {}).items()}
    return markdown(rows) if rows else []
