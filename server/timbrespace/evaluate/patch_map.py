"""``timbrespace eval patch-vae``: the patch map measured as Peachey, Oore and Malloch measure theirs.

* Table I: each validation preset (the checkpoint's own split, recovered from its stored training
  config) and its reconstruction (placed on the map as the live engine places it, decoded there)
  played by amSynth and rated
  by the AudioCommons timbral models; mean, standard deviation and RMSE of the rating error per
  quality, beside the paper's means and a random-preset baseline (each preset against another
  validation preset drawn at random, seeded).
* Figure 8: each quality over a grid of decoded points of the unit square.
* Smooth paths (SPINVAE): for random pairs of presets, the path through the map (as ``/source
  /target /alpha`` play it: linear in the latent, its switches planned by
  :mod:`timbrespace.models.patch_path`) against linear morphing of the raw parameters,
  scored by :mod:`timbrespace.evaluate.smoothness` on the timbral ratings and on the log-mel.
* Coverage (:mod:`timbrespace.evaluate.patch_coverage`): over a finer grid of the whole square, the
  share of cells that hold a note, that are bright past 5 kHz, and that sound like some preset.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from timbrespace.evaluate import patch_coverage, smoothness
from timbrespace.evaluate.patch_sound import C4, TARGET_RMS, Heard, Listener
from timbrespace.evaluate.timbral import QUALITIES
from timbrespace.mapping import grid_points
from timbrespace.models.patch_space import PatchSpace
from timbrespace.models.train_patch_vae import _split
from timbrespace.models.train_patch_vae_options import TrainConfig
from timbrespace.patch import params
from timbrespace.patch.library import PresetLibrary

FloatArray = npt.NDArray[np.float64]
#: Table I of Peachey, Oore and Malloch: mean absolute timbral error on their validation set.
PAPER = {"hardness": 11.74, "depth": 10.96, "brightness": 10.33, "roughness": 17.68, "warmth": 9.69,
         "sharpness": 12.64, "boominess": 8.34}


@dataclass(frozen=True)
class Settings:
    """How much to measure; ``make(quick)`` gives the full run or the CI-sized one."""

    quick: bool = False
    seed: int = 0
    # Rating a patch dominates the cost, so the full run's sizes are a compromise with a run one
    # can repeat on one core; `--presets 0 --grid 12` is the thorough form. Pairs are many because
    # the target is a share of them: over 10 pairs, 65 % and 80 % cannot be told apart.
    presets: int | None = 64  # validation presets for Table I (None: all of them)
    grid: int = 8  # Figure 8: grid x grid decoded points
    pairs: int = 40  # path pairs
    steps: int = 9  # points per path, ends included
    duration: float = 4.0  # seconds of C4
    coverage_grid: int = 24  # coverage: cells per side (what docs/map.png draws); no rating, so cheap
    coverage_presets: int | None = None  # presets the cells are compared with (None: the whole library)

    @classmethod
    def make(cls, quick: bool, seed: int = 0) -> Settings:
        """The full run, or (``quick``) three presets, a 2x2 grid, one 5-step pair of 1 s notes and a 4x4 coverage
        grid against 32 presets."""
        if quick:
            return cls(True, seed, presets=3, grid=2, pairs=1, steps=5, duration=1.0, coverage_grid=4,
                       coverage_presets=32)
        return cls(False, seed)


def validation_split(space: PatchSpace) -> tuple[PresetLibrary, npt.NDArray[np.intp]]:
    """The library the checkpoint was trained on and the indices of its validation presets.

    Rebuilt from the checkpoint's metadata (bank folders, seed, validation fraction) with the
    training's own split; ValueError if the banks no longer hold what the checkpoint saw.
    """
    meta = space.metadata
    try:
        dirs = meta["data"]["factory_dirs"]
        training = meta.get("training", {})
        seed = int(training.get("seed", TrainConfig.seed))
        fraction = float(training.get("val_fraction", TrainConfig.val_fraction))
        expected = int(meta["data"]["n_validation"])
        unique = int(meta["data"]["presets_unique"])
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"the checkpoint's metadata lacks its data split ({e}); expected data.factory_dirs, "
                         "data.n_validation and data.presets_unique") from None
    library = PresetLibrary(dirs)  # factory banks only, as training read them
    if library.factory_count != unique:
        raise ValueError(f"the banks in {', '.join(dirs)} now hold {library.factory_count} distinct presets; the "
                         f"checkpoint was trained on {unique}, so its validation split cannot be recovered")
    _, val = _split(library.factory_count, fraction, seed)
    if len(val) != expected:
        raise ValueError(f"recovered {len(val)} validation presets; the checkpoint says {expected}")
    return library, val


def reconstruct(space: PatchSpace, values: npt.ArrayLike) -> FloatArray:
    """Patches through the map: placed as the engine places them (the sound index, else the posterior
    mean), decoded there."""
    return space.decode_latent(space.encode_latent(values))


def _stats(err: FloatArray) -> dict[str, dict[str, float]]:
    """Per quality: mean and standard deviation of |error|, and RMSE (error: ``(N, 7)``)."""
    a = np.abs(err)
    return {q: {"mean": float(a[:, i].mean()), "std": float(a[:, i].std()),
                "rmse": float(np.sqrt(np.mean(err[:, i] ** 2)))} for i, q in enumerate(QUALITIES)}


def table_one(space: PatchSpace, library: PresetLibrary, chosen: npt.NDArray[np.intp], listener: Listener,
              seed: int) -> dict[str, Any]:
    """Table I over the presets ``chosen``, with the random-preset baseline."""
    values = library.values()[chosen]
    heard = listener.hear_all(values)
    recon = listener.hear_all(reconstruct(space, values))
    ok = [i for i in range(len(chosen)) if heard[i] is not None and recon[i] is not None]
    if not ok:
        raise ValueError("no chosen preset and its reconstruction both render sound; nothing to rate")
    orig = np.stack([heard[i].ratings for i in ok])  # type: ignore[union-attr]
    rec = np.stack([recon[i].ratings for i in ok])  # type: ignore[union-attr]
    # Baseline: each preset against another one drawn at random from the same rated set (never itself).
    rng = np.random.default_rng(seed)
    n = len(ok)
    other = (np.arange(n) + rng.integers(1, n, size=n)) % n if n > 1 else np.zeros(n, dtype=np.intp)
    return {
        "presets": [library.qualified_name(int(chosen[i])) for i in ok],
        "silent": [library.qualified_name(int(chosen[i])) for i in range(len(chosen)) if i not in ok],
        "original": orig.tolist(), "reconstruction": rec.tolist(),
        "model": _stats(rec - orig), "baseline": _stats(orig[other] - orig),
        "coordinates": space.encode_unit(values[ok]).tolist(),
    }


def figure_eight(space: PatchSpace, listener: Listener, grid: int) -> dict[str, Any]:
    """Each quality over a ``grid`` x ``grid`` lattice of the unit square (cell centres); NaN where silent."""
    xy = grid_points(grid)  # row by row in y: reshaped (grid, grid), rows are y (origin at the bottom when drawn)
    heard = listener.hear_all(space.decode_unit(xy))
    r = np.array([h.ratings if h is not None else np.full(len(QUALITIES), np.nan) for h in heard])
    return {"grid": grid, "centres": xy[:grid, 0].tolist(),
            "maps": {q: r[:, i].reshape(grid, grid).tolist() for i, q in enumerate(QUALITIES)}}


#: Floors of the features' spreads: a rating point, a decibel (a band that never moves is not noise).
RATING_FLOOR, LOGMEL_FLOOR = 1.0, 1.0
SCORES = ("timbral_roughness", "logmel_roughness", "timbral_nonlinearity", "logmel_nonlinearity",
          "timbral_relative_roughness", "logmel_relative_roughness")


def _scores(path: list[Heard], scales: tuple[FloatArray, FloatArray]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kind, f, scale in (("timbral", np.stack([h.ratings for h in path]), scales[0]),
                           ("logmel", np.stack([h.logmel for h in path]), scales[1])):
        out[f"{kind}_roughness"] = smoothness.roughness(f, scale)
        out[f"{kind}_nonlinearity"] = smoothness.nonlinearity(f, scale)
        out[f"{kind}_relative_roughness"] = smoothness.relative_roughness(f, scale)
    # Kept so other path measures can be computed later without rendering again.
    out["ratings"] = [h.ratings.tolist() for h in path]
    out["logmel"] = [h.logmel.tolist() for h in path]
    return out


def paths(space: PatchSpace, library: PresetLibrary, pool: npt.NDArray[np.intp], listener: Listener,
          pairs: int, steps: int, seed: int) -> dict[str, Any]:
    """Map paths against linear morphs for ``pairs`` random pairs of presets drawn from ``pool``.

    Features are scaled by their spread over the presets of ``pool`` that render (``listener`` has
    heard them already when Table I ran on the same pool).
    """
    if len(pool) < 2:
        raise ValueError("paths need at least two presets to pair")
    heard = [h for h in listener.hear_all(library.values()[pool]) if h is not None]
    if len(heard) < 2:
        raise ValueError("paths need at least two presets that render sound")
    scales = (smoothness.spread([h.ratings for h in heard], RATING_FLOOR),
              smoothness.spread([h.logmel for h in heard], LOGMEL_FLOOR))
    rng = np.random.default_rng(seed + 1)  # not the baseline's stream: the two draws stay independent
    alphas = np.linspace(0.0, 1.0, steps)[:, None]
    rows: list[dict[str, Any]] = []
    skipped: list[str] = []
    for _ in range(pairs):
        a, b = (int(i) for i in rng.choice(pool, size=2, replace=False))
        va, vb = library[a].values, library[b].values
        z = space.encode_latent(np.stack([va, vb]))
        through_map = listener.hear_all(space.decode_path(space.path_plan(z[0], z[1]), alphas[:, 0]))
        # Linear morphing of the raw parameters; clamp_vector rounds the stepped ones (as amSynth would).
        morph = listener.hear_all([params.clamp_vector(v) for v in (1.0 - alphas) * va + alphas * vb])
        name = f"{library.qualified_name(a)} -> {library.qualified_name(b)}"
        if any(h is None for h in through_map) or any(h is None for h in morph):
            skipped.append(name)
            continue
        rows.append({"pair": name, "map": _scores(through_map, scales),  # type: ignore[arg-type]
                     "morph": _scores(morph, scales)})  # type: ignore[arg-type]
    summary: dict[str, Any] = {}
    for key in SCORES:
        m = np.array([r["map"][key] for r in rows])
        s = np.array([r["morph"][key] for r in rows])
        summary[key] = {
            "map_better_share": float(np.mean(m < s)) if rows else float("nan"),
            "map_better_interval": list(smoothness.share_interval(int(np.sum(m < s)), len(rows))),
            "map_median": float(np.median(m)) if rows else float("nan"),
            "morph_median": float(np.median(s)) if rows else float("nan"),
            "map_quartiles": np.percentile(m, [25, 75]).tolist() if rows else [],
            "morph_quartiles": np.percentile(s, [25, 75]).tolist() if rows else [],
        }
    return {"pairs": rows, "skipped": skipped, "summary": summary, "steps": steps,
            "scales": {"ratings": scales[0].tolist(), "logmel": scales[1].tolist()}}


def evaluate(space: PatchSpace, settings: Settings, log: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Every measurement of the module's docstring; a JSON-ready dict."""
    t0 = time.perf_counter()
    library, val = validation_split(space)
    rng = np.random.default_rng(settings.seed)
    chosen = val if settings.presets is None or settings.presets >= len(val) else \
        np.sort(rng.choice(val, size=settings.presets, replace=False))
    listener = Listener(settings.duration)
    listener.progress = lambda: None if listener.renders % 25 else log(f"  {listener.renders} renders")
    log(f"Table I: {len(chosen)} of {len(val)} validation presets and their reconstructions")
    table = table_one(space, library, chosen, listener, settings.seed)
    log(f"Figure 8: a {settings.grid}x{settings.grid} grid ({listener.renders} renders so far)")
    fig8 = figure_eight(space, listener, settings.grid)
    log(f"paths: {settings.pairs} pairs of {settings.steps} steps ({listener.renders} renders so far)")
    path = paths(space, library, chosen, listener, settings.pairs, settings.steps, settings.seed)
    every = library.values()
    compared = every if settings.coverage_presets is None or settings.coverage_presets >= len(every) else \
        every[np.sort(rng.choice(len(every), size=settings.coverage_presets, replace=False))]
    cover = patch_coverage.coverage(space, settings.coverage_grid, compared, log=log)
    return {
        "settings": {**asdict(settings), "note": C4, "rms": TARGET_RMS, "validation_presets": len(val)},
        "model": {"sha256": space.sha256, "latent_low": space.low.tolist(), "latent_high": space.high.tolist(),
                  "training": space.metadata.get("training", {}),
                  "placed_by": "sound index" if space.index is not None else "posterior mean"},
        "paper": PAPER, "table": table, "figure8": fig8, "paths": path, "coverage": cover,
        "renders": listener.renders, "seconds": time.perf_counter() - t0,
    }


def default_model() -> Path:
    """The shipped patch VAE."""
    from timbrespace.models.patch_space import default_checkpoint

    return default_checkpoint()
