"""The patch map's evaluation written out: a text table, JSON, Markdown and the figures (PNG)."""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from timbrespace.evaluate import patch_coverage
from timbrespace.evaluate.patch_map import PAPER
from timbrespace.evaluate.timbral import QUALITIES
from timbrespace.figures import figure

PATH_KEYS = {"timbral_roughness": "roughness, timbral ratings", "logmel_roughness": "roughness, log-mel",
             "timbral_nonlinearity": "non-linearity, timbral ratings", "logmel_nonlinearity": "non-linearity, log-mel",
             "timbral_relative_roughness": "relative roughness, timbral ratings",
             "logmel_relative_roughness": "relative roughness, log-mel"}


def table_rows(result: dict[str, Any]) -> list[tuple[str, ...]]:
    """Table I's rows: quality, paper's mean, model mean/std/RMSE, baseline mean/RMSE, RMSE ratio."""
    model, base = result["table"]["model"], result["table"]["baseline"]
    rows: list[tuple[str, ...]] = []
    for q in QUALITIES:
        m, b = model[q], base[q]
        ratio = m["rmse"] / b["rmse"] if b["rmse"] > 0 else math.nan
        rows.append((q, f"{PAPER[q]:.2f}", f"{m['mean']:.2f}", f"{m['std']:.2f}", f"{m['rmse']:.2f}",
                     f"{b['mean']:.2f}", f"{b['rmse']:.2f}", f"{ratio:.2f}"))
    return rows


#: The playable square's targets (issue 18, after the hearing map left half the square without a held note).
HOLDS_TARGET, BRIGHT_TARGET = 0.85, 0.20
#: How Table I's reconstructions are made when the checkpoint has a sound index.
PLACED_BY_EAR = ("placed where the live engine places it, at the point of the square whose timbral qualities are "
                 "nearest the preset's predicted ones (the checkpoint's sound index: the preset played and "
                 "described, its qualities predicted by a head fitted on rated training presets, and rated points "
                 "of the map where the checkpoint's training had them; `timbrespace.models.patch_sound_index`), "
                 "and decoded there")
HEADER = ("quality", "paper mean", "mean", "std", "RMSE", "random mean", "random RMSE", "RMSE / random")


def targets(result: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    """Issue 18's targets for a better map: (figure, value, target, met), from the measured result."""
    t, summary = result["table"], result["paths"]["summary"]
    rows = []
    for q in QUALITIES:
        mean, rmse, base = t["model"][q]["mean"], t["model"][q]["rmse"], t["baseline"][q]["rmse"]
        rows.append((f"{q}: mean error", f"{mean:.2f}", f"<= {0.7 * PAPER[q]:.2f} (0.7 x paper)",
                     mean <= 0.7 * PAPER[q]))
        rows.append((f"{q}: RMSE", f"{rmse:.2f}", f"<= {0.5 * base:.2f} (half the random preset's)",
                     rmse <= 0.5 * base))
    for key in ("timbral_roughness", "logmel_roughness"):
        share = summary[key]["map_better_share"]
        rows.append((f"map path smoother ({PATH_KEYS[key]})", _pct(share) + _interval(summary[key]), ">= 80% of pairs",
                     math.isfinite(share) and share >= 0.8))
    c = result.get("coverage")
    if c:  # reports written before the coverage figure have none
        rows.append(("square: cells that hold a note", _pct(c["holds_note_share"]), f">= {_pct(HOLDS_TARGET)} of cells",
                     c["holds_note_share"] >= HOLDS_TARGET))
        rows.append((f"square: cells over {c['bright_hz'] / 1000:g} kHz", _pct(c["bright_share"]),
                     f"<= {_pct(BRIGHT_TARGET)} of cells", c["bright_share"] <= BRIGHT_TARGET))
    return rows


def format_table(result: dict[str, Any]) -> str:
    """Table I and the path summary as fixed-width text."""
    rows = [HEADER, *table_rows(result)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]
    lines = [f"Table I: {len(result['table']['presets'])} validation presets (|error| of the 0-100 ratings)"]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    p = result["paths"]
    lines.append(f"paths: {len(p['pairs'])} pairs of {p['steps']} steps ({len(p['skipped'])} skipped: silent)")
    for key, label in PATH_KEYS.items():
        s = p["summary"][key]
        lines.append(f"  {label}: map better on {_pct(s['map_better_share'])} of pairs; "
                     f"median map {s['map_median']:.3g}, morph {s['morph_median']:.3g}")
    c = result.get("coverage")
    if c:
        lines.append(f"coverage: a {c['grid']}x{c['grid']} grid of the unit square")
        lines += [f"  {name}: {value}" for name, value in patch_coverage.rows(c)]
    return "\n".join(lines)


def _interval(summary: dict[str, Any]) -> str:
    """`` (90% interval a-b%)`` of a path share (reports written before the interval have none)."""
    iv = summary.get("map_better_interval")
    return "" if not iv else f" (90% interval {100 * iv[0]:.0f}-{100 * iv[1]:.0f}%)"


def _pct(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{100 * x:.0f}%"


def to_json(result: dict[str, Any]) -> str:
    """JSON text: NaN (a silent grid point, nothing to compare) becomes null, numbers keep 6 significant
    digits (far finer than a rating point or a decibel) and a list of numbers stays on one line, so the
    paths' per-step features do not run to thousands of lines."""

    def clean(v: Any) -> Any:
        if isinstance(v, float):
            return float(f"{v:.6g}") if math.isfinite(v) else None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [clean(x) for x in v]
        return v

    text = json.dumps(clean(result), indent=1)
    return re.sub(r"\[\s+([-+0-9.eE,\snul]+?)\s+\]", lambda m: "[" + " ".join(m.group(1).split()) + "]", text) + "\n"


def plot_figure_eight(path: Path, result: dict[str, Any]) -> None:
    """Each quality over the unit square (the paper's Figure 8), with the rated presets' places."""
    fig8 = result["figure8"]
    xy = np.asarray(result["table"]["coordinates"], dtype=np.float64).reshape(-1, 2)
    fig = figure(16.0, 8.4)
    for k, q in enumerate(QUALITIES):
        ax = fig.add_subplot(2, 4, k + 1)
        im = ax.imshow(np.asarray(fig8["maps"][q], dtype=np.float64), origin="lower", extent=(0, 1, 0, 1),
                       cmap="viridis", interpolation="nearest")
        ax.scatter(xy[:, 0], xy[:, 1], s=7, c="w", edgecolors="k", linewidths=0.3)
        ax.set(title=q, xlabel="x", ylabel="y")
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax = fig.add_subplot(2, 4, 8)
    ax.axis("off")
    ax.text(0.0, 0.5, f"{fig8['grid']}x{fig8['grid']} decoded points,\nC4 {result['settings']['duration']:g} s, "
            "RMS-normalised,\nrated 0-100 (AudioCommons).\nDots: rated validation presets.\nBlank: silent patch.",
            fontsize=10, va="center")
    fig.suptitle("Timbral qualities over the patch map (after Peachey, Oore and Malloch, Fig. 8)")
    fig.tight_layout()
    fig.savefig(path)


def plot_errors(path: Path, result: dict[str, Any]) -> None:
    """Table I as bars: the model's mean error, the paper's and the random baseline's."""
    t = result["table"]
    x = np.arange(len(QUALITIES))
    fig = figure(9.0, 4.2)
    ax = fig.add_subplot(1, 1, 1)
    for off, label, vals in ((-0.27, "paper", [PAPER[q] for q in QUALITIES]),
                             (0.0, "this model", [t["model"][q]["mean"] for q in QUALITIES]),
                             (0.27, "random preset", [t["baseline"][q]["mean"] for q in QUALITIES])):
        ax.bar(x + off, vals, width=0.27, label=label)
    ax.set_xticks(x, QUALITIES)
    ax.set(ylabel="mean |error| (0-100 scale)", title=f"Table I: {len(t['presets'])} validation presets")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)


def plot_paths(path: Path, result: dict[str, Any]) -> None:
    """Per pair, map path against linear morph: roughness on log axes (below the diagonal: map smoother)."""
    rows = result["paths"]["pairs"]
    fig = figure(10.0, 4.6)
    for k, (key, label) in enumerate(list(PATH_KEYS.items())[:2]):
        ax = fig.add_subplot(1, 2, k + 1)
        m = np.array([r["map"][key] for r in rows])
        s = np.array([r["morph"][key] for r in rows])
        if len(m):
            lo = max(min(m.min(), s.min()) / 2, 1e-6)
            hi = max(m.max(), s.max()) * 2
            ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
            ax.scatter(s, m, s=14)
            ax.set(xscale="log", yscale="log", xlim=(lo, hi), ylim=(lo, hi))
        share = result["paths"]["summary"][key]["map_better_share"]
        ax.set(xlabel="linear morph of the parameters", ylabel="path through the map",
               title=f"{label}: map smoother on {_pct(share)}")
    fig.tight_layout()
    fig.savefig(path)


def plot_coverage(path: Path, result: dict[str, Any]) -> None:
    """The coverage grid: amplitude sustain and centroid of each cell's patch, the rated presets over them."""
    c = result["coverage"]
    xy = np.asarray(result["table"]["coordinates"], dtype=np.float64).reshape(-1, 2)
    fig = figure(11.0, 4.8)
    for k, (key, title, values) in enumerate((
            ("sustain", f"amplitude sustain (holds a note: >= {c['holds_note']:g})", np.asarray(c["sustain"])),
            ("centroid", "log10 centroid, Hz (MIDI 57, the project's voice)",
             np.log10(np.maximum(np.asarray(c["centroid"], dtype=np.float64), 20.0))))):
        ax = fig.add_subplot(1, 2, k + 1)
        im = ax.imshow(values, origin="lower", extent=(0, 1, 0, 1), cmap="magma" if key == "centroid" else "viridis",
                       interpolation="nearest")
        ax.scatter(xy[:, 0], xy[:, 1], s=7, c="w", edgecolors="k", linewidths=0.3)
        ax.set(title=title, xlabel="x", ylabel="y")
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.suptitle(f"Coverage: {_pct(c['holds_note_share'])} of cells hold a note, {_pct(c['bright_share'])} are over "
                 f"{c['bright_hz'] / 1000:g} kHz")
    fig.tight_layout()
    fig.savefig(path)


PLOTS = {"patch-map-fig8.png": plot_figure_eight, "patch-map-table1.png": plot_errors,
         "patch-map-paths.png": plot_paths, "patch-map-coverage.png": plot_coverage}


def write_plots(folder: Path, result: dict[str, Any]) -> list[Path]:
    """Every figure into ``folder`` (created); their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name, draw in PLOTS.items():
        if name == "patch-map-coverage.png" and not result.get("coverage"):
            continue
        draw(folder / name, result)
        out.append(folder / name)
    return out


def markdown(result: dict[str, Any], md_dir: Path, plots: Path, date: str) -> str:
    """The report: Table I beside the paper and the baseline, Figure 8, the paths, and the method."""
    s, t, p = result["settings"], result["table"], result["paths"]

    def rel(name: str) -> str:
        return Path(os.path.relpath(plots / name, md_dir)).as_posix()

    out = ["# The patch map, measured", "",
           f"Generated by `timbrespace eval patch-vae{' --quick' if s['quick'] else ''} --seed {s['seed']}` on "
           f"{date} in {result['seconds']:.0f} s ({result['renders']} amSynth renders), model sha256 "
           f"`{result['model']['sha256'][:12]}`.", "",
           "Every patch is played by amSynth itself (its DSSI plugin, headless) on C4 (MIDI "
           f"{s['note']}) held for {s['duration']:g} s at velocity 100, normalised to RMS {s['rms']:g}, and rated "
           "0-100 by the AudioCommons timbral models (timbral_models 0.4.0, adapted to today's librosa by "
           "`timbrespace.evaluate.timbral`), as in Peachey, Oore and Malloch's Table I.", "",
           "## Table I: reconstruction error", "",
           f"{len(t['presets'])} presets drawn (seed {s['seed']}) from the checkpoint's own validation split "
           f"({s['validation_presets']} presets); each against its reconstruction through the map: "
           + (PLACED_BY_EAR if result["model"].get("placed_by") == "sound index" else
              "encoded to the posterior mean, decoded there")
           + ". *Random*: each preset against another of the same presets drawn at random, the error of a map "
           "that knew nothing. Means and standard deviations are of |error|."]
    if t["silent"]:
        out += ["", f"Left out ({len(t['silent'])}): the preset or its reconstruction renders silence or NaN: "
                + ", ".join(t["silent"]) + "."]
    out += ["", "| " + " | ".join(HEADER) + " |", "|" + " --- |" * len(HEADER)]
    out += ["| " + " | ".join(r) + " |" for r in table_rows(result)]
    out += ["", f"![Table I]({rel('patch-map-table1.png')})", ""]
    if result.get("coverage"):
        out += coverage_section(result["coverage"], rel("patch-map-coverage.png"))
    out += ["## Figure 8: the qualities over the map", "",
            f"Each quality at the centres of a grid of {result['figure8']['grid']}x{result['figure8']['grid']} "
            "cells over the unit square (the square `/latent` plays), decoded and rendered as above.", "",
            f"![Figure 8]({rel('patch-map-fig8.png')})", "",
            "## Smooth paths (SPINVAE's measure)", "",
            f"{len(p['pairs'])} random pairs of the presets above (seed {s['seed']}), {p['steps']} evenly spaced "
            "steps each, ends included, by two routes: through the map, as `/source`, `/target` and `/alpha` play it "
            "(along the route between the two placements where the sound index's qualities change least, alpha "
            "running by its length in the square: `timbrespace.models.patch_route`; each point decoded, every "
            "stepped parameter keeping the source's or the target's level and switching once: "
            "`timbrespace.models.patch_path`), and by linear "
            "morphing of the raw parameters (stepped ones rounded). Each step is heard as above. Features: the seven "
            "ratings, and the time-averaged 64-band log-mel spectrum in dB, each divided by its standard deviation "
            "over the presets of Table I (at least one point or one dB), so both routes are scored on one scale. A "
            "path's *roughness* is the sum along it of the squared second differences of its features "
            "(averaged over features), its *non-linearity* the mean squared distance from the straight line "
            "between its ends, and its *relative roughness* the roughness over the squared distance between its "
            "ends (plus one): the map's ends are reconstructions, nearer each other than the presets, so this "
            "form does not reward a map for shrinking the distance. Lower is smoother (more linear); the share "
            "is of pairs where the map's path scores lower than the morph, with its 90% (Wilson) interval: the "
            "pairs are a sample, and a share of a few tens of them is only known to within about ten points."]
    if p["skipped"]:
        out += ["", f"Skipped ({len(p['skipped'])}, a step renders silence): " + ", ".join(p["skipped"]) + "."]
    out += ["", "| measure | map better on | map median (quartiles) | morph median (quartiles) |",
            "| --- | --- | --- | --- |"]
    for key, label in PATH_KEYS.items():
        q = p["summary"][key]
        mq = ", ".join(f"{v:.3g}" for v in q["map_quartiles"])
        sq = ", ".join(f"{v:.3g}" for v in q["morph_quartiles"])
        out.append(f"| {label} | {_pct(q['map_better_share'])} of pairs{_interval(q)} | {q['map_median']:.3g} ({mq}) | "
                   f"{q['morph_median']:.3g} ({sq}) |")
    out += ["", f"![Paths]({rel('patch-map-paths.png')})", "",
            "## Issue 18's targets for a better map", "",
            "| figure | this model | target | met |", "| --- | --- | --- | --- |"]
    out += [f"| {f} | {v} | {t} | {'yes' if ok else '**no**'} |" for f, v, t, ok in targets(result)]
    train = result["model"].get("training", {})
    hidden = "-".join(str(h) for h in train.get("hidden", (256, 128)))
    sizes = (f"{len(t['presets']) + len(t['silent'])} of the {s['validation_presets']} validation presets, a "
             f"grid of {result['figure8']['grid']}x{result['figure8']['grid']} cells and "
             f"{len(p['pairs']) + len(p['skipped'])} pairs")
    out += ["", "## How this differs from the paper", "",
            f"- Sizes: {sizes}. Rating a patch costs far more than rendering it, so the default run is sized "
            "to repeat on one core; `timbrespace eval patch-vae --presets 0 --grid 12` is the "
            "thorough form (every validation preset).",
            f"- The model is this project's (hidden {hidden}, beta {train.get('beta', 0.25):g}, its own split of "
            "amSynth's 28 factory "
            "banks; trained with the options its card names, which may include hearing its reconstructions "
            "through a proxy of rendered spectra, see below; models/patch-vae/MODEL_CARD.md), not the paper's; "
            "the paper's figures are its own model on its own validation set.",
            f"- The note is held for the whole {s['duration']:g} s (no release), and every render is scaled to "
            f"RMS {s['rms']:g} before rating (the models also normalise loudness to -24 LUFS themselves).",
            "- timbral_models 0.4.0 runs on today's librosa and numpy through `evaluate/timbral.py`, which only "
            "renames calls (keyword arguments, `np.pad`); the models' arithmetic is theirs.",
            "- Presets (or reconstructions) that render silence or NaN cannot be rated and are listed above, "
            "not scored.", ""]
    return "\n".join(out)


def coverage_section(c: dict[str, Any], plot: str) -> list[str]:
    """The report's coverage section (Markdown lines): the figures of the whole square beside Table I's."""
    lk = c.get("likeness")
    like = "" if not lk else (
        f" A cell *sounds like some preset* when its descriptor (C4 on amSynth, 2 s: the 48-band log-mel spectrum "
        "and the loudness envelope in 8 parts, RMS-normalised, each standardised by its spread over the presets) "
        f"is no further (RMS) from the nearest of {lk['presets_heard']} presets than {100 * lk['quantile']:.0f}% "
        "of those presets are from their own nearest other preset.")
    out = ["## Coverage: the whole square", "",
           "Table I and the paths play points where presets encode; a finger goes anywhere on the pad. Each cell "
           f"of a {c['grid']}x{c['grid']} grid of the unit square (the cells `docs/map.png` draws) is decoded: it "
           "*holds a note* when its amplitude sustain (the level the envelope holds a key at) is at least "
           f"{c['holds_note']:g}, and its brightness is the spectral centroid of A3 (MIDI 57) on the project's voice "
           f"(`timbrespace.mapping`).{like}", "", "| figure | this model |", "| --- | --- |"]
    out += [f"| {name} | {value} |" for name, value in patch_coverage.rows(c)]
    return [*out, "", f"![Coverage]({plot})", ""]


CARD_BEGIN = "<!-- timbrespace eval patch-vae: begin -->"
CARD_END = "<!-- timbrespace eval patch-vae: end -->"


def card_section(result: dict[str, Any], date: str) -> str:
    """The model card's "Heard" section: Table I and the path shares, measured on ``date``."""
    s, p = result["settings"], result["paths"]
    lines = [CARD_BEGIN, f"## Heard: timbral error and smooth paths (measured {date})", "",
             f"`timbrespace eval patch-vae --seed {s['seed']}` (report: [docs/patch-map.md](../../docs/patch-map.md)): "
             f"{len(result['table']['presets'])} validation presets and their reconstructions played by amSynth "
             f"(C4, {s['duration']:g} s, RMS-normalised), rated 0-100 by the AudioCommons timbral models, beside "
             "Peachey, Oore and Malloch's Table I and a random other validation preset.", "",
             "| " + " | ".join(HEADER) + " |", "|" + " --- |" * len(HEADER)]
    lines += ["| " + " | ".join(r) + " |" for r in table_rows(result)]
    lines += ["", f"Paths ({len(p['pairs'])} random pairs, {p['steps']} steps): the path through the map is "
              "smoother than linear morphing of the parameters on "
              f"{_pct(p['summary']['timbral_roughness']['map_better_share'])} of pairs by the timbral ratings and "
              f"{_pct(p['summary']['logmel_roughness']['map_better_share'])} by the log-mel spectrum. Issue 18's "
              f"targets for a better map: {sum(ok for *_, ok in targets(result))} of {len(targets(result))} met."]
    c = result.get("coverage")
    if c:
        lines += ["", f"The whole square (a {c['grid']}x{c['grid']} grid of decoded cells):", "",
                  "| figure | value |", "| --- | --- |", *[f"| {n} | {v} |" for n, v in patch_coverage.rows(c)]]
    lines.append(CARD_END)
    return "\n".join(lines)


def update_card(card: Path, section: str) -> str:
    """``card``'s text with ``section`` in place of an earlier one (or before "## Limits", else at the end)."""
    text = card.read_text()
    if CARD_BEGIN in text and CARD_END in text:
        head, rest = text.split(CARD_BEGIN, 1)
        return head + section + rest.split(CARD_END, 1)[1]
    if "\n## Limits" in text:
        head, rest = text.split("\n## Limits", 1)
        return head + "\n" + section + "\n\n## Limits" + rest
    return text.rstrip("\n") + "\n\n" + section + "\n"


KEEP_BEGIN = "<!-- written by hand: timbrespace eval patch-vae keeps this section -->"
KEEP_END = "<!-- end of the hand-written section -->"


def keep_hand_written(old: str, new: str) -> str:
    """``new`` (a regenerated report) with the hand-written section of ``old`` appended, when it has one.

    Measurements of training variants cannot be regenerated by the eval, so a rerun must not drop them.
    """
    if KEEP_BEGIN not in old or KEEP_END not in old.split(KEEP_BEGIN, 1)[1]:
        return new
    kept = old.split(KEEP_BEGIN, 1)[1].split(KEEP_END, 1)[0]
    return new.rstrip("\n") + "\n\n" + KEEP_BEGIN + kept + KEEP_END + "\n"
