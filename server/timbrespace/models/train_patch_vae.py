"""Train the patch VAE on amSynth's factory presets and write a shippable model directory.

``train(out_dir, ...)`` is reproducible (seeded, deterministic algorithms, one
thread by default) and writes ``patch-vae.pt`` (+ ``.sha256``), the loss
curve (``loss_curve.csv``/``.png``) and ``MODEL_CARD.md``.  Command line:
``timbrespace train patch-vae`` or ``python -m timbrespace.models.train_patch_vae``.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from tqdm import tqdm

from timbrespace.models import patch_rating_descriptor, registry
from timbrespace.models.checkpoint import save_checkpoint
from timbrespace.models.model_card import write_loss_csv, write_patch_vae_card
from timbrespace.models.patch_codec import PatchCodec
from timbrespace.models.patch_hearing import RENDERERS
from timbrespace.models.patch_lattice_ratings import LatticeRatings
from timbrespace.models.patch_lattice_ratings import load as load_lattice_ratings
from timbrespace.models.patch_ratings import Ratings, RatingsError, fit_head
from timbrespace.models.patch_ratings import load as load_ratings
from timbrespace.models.patch_sound_index import Anchor, lattice
from timbrespace.models.patch_sound_index import build as build_index
from timbrespace.models.patch_sound_training import (
    HOLDS_NOTE,
    Ears,
    distance_error,
    hear_cached,
    held_targets,
    path_error,
    prepare,
    sound_error,
    square_error,
)
from timbrespace.models.patch_space import PatchSpace
from timbrespace.models.patch_vae import PatchVAE, VAEOutput, vae_loss
from timbrespace.models.seeding import reproducible
from timbrespace.models.train_patch_vae_options import (
    CHECKPOINT_NAME,
    DEFAULT_FACTORY_DIRS,
    TrainConfig,
    add_arguments,
)
from timbrespace.patch import params
from timbrespace.patch.library import PresetLibrary


@dataclass(frozen=True)
class _Data:
    x: torch.Tensor  # features
    cont: torch.Tensor  # continuous targets in [0, 1]
    cls: torch.Tensor  # class indices


def _tensors(codec: PatchCodec, values: npt.NDArray[np.float64]) -> _Data:
    return _Data(
        torch.as_tensor(codec.encode(values), dtype=torch.float32),
        torch.as_tensor(codec.scale_continuous(values), dtype=torch.float32),
        torch.as_tensor(codec.classes(values), dtype=torch.long),
    )


def evaluate(
    model: PatchVAE, codec: PatchCodec, values: npt.NDArray[np.float64], train_values: npt.NDArray[np.float64]
) -> dict[str, Any]:
    """Reconstruction metrics through the posterior mean, with naive baselines from ``train_values``.

    Categorical: accuracy per stepped parameter and its mean, against always
    predicting the training set's most common level.  Continuous: MSE on the
    [0, 1] scale per parameter and overall, against predicting the training mean.
    """
    data = _tensors(codec, values)
    model.eval()
    with torch.inference_mode():
        out = model(data.x, sample=False)
        pred = model.padded_logits(out.logits).argmax(dim=2).numpy()
        cont = out.continuous.numpy().astype(np.float64)
    truth = data.cls.numpy()
    train_cls = codec.classes(train_values)
    accuracy, baseline = {}, {}
    for k, g in enumerate(codec.groups):
        name = params.NAMES[g.param]
        accuracy[name] = float(np.mean(pred[:, k] == truth[:, k]))
        mode = np.bincount(train_cls[:, k], minlength=g.size).argmax()
        baseline[name] = float(np.mean(truth[:, k] == mode))
    target = data.cont.numpy().astype(np.float64)
    mse = np.mean((cont - target) ** 2, axis=0)
    base = np.mean((codec.scale_continuous(train_values).mean(axis=0) - target) ** 2, axis=0)
    names = [params.NAMES[i] for i in codec.continuous]
    return {
        "n": len(values),
        "categorical_accuracy": float(np.mean(list(accuracy.values()))),
        "categorical_accuracy_baseline": float(np.mean(list(baseline.values()))),
        "categorical_accuracy_per_param": accuracy,
        "categorical_baseline_per_param": baseline,
        "continuous_mse": float(np.mean(mse)),
        "continuous_mse_baseline": float(np.mean(base)),
        "continuous_mse_per_param": dict(zip(names, map(float, mse), strict=True)),
        "continuous_baseline_per_param": dict(zip(names, map(float, base), strict=True)),
    }


def _epoch_losses(model: PatchVAE, data: _Data, cfg: TrainConfig, beta: float,
                  ears: Ears | None = None) -> dict[str, float]:
    model.eval()
    with torch.inference_mode():
        out = model(data.x, sample=False)
        parts = vae_loss(model, out, data.cont, data.cls, beta=beta, continuous_weight=cfg.continuous_weight)
        row = {
            "loss": float(parts.total),
            "continuous": float(parts.continuous),
            "categorical": float(parts.categorical),
            "kl": float(parts.kl),
        }
        if ears is not None:
            row["sound"] = float(sound_error(model, ears.proxy, out, ears.target, ears.heard, cfg.straight_through))
    return row


def _hearing_terms(model: PatchVAE, res: VAEOutput, ears: Ears | None, j: torch.Tensor,
                   cfg: TrainConfig) -> torch.Tensor | None:
    """The weighted hearing terms of one batch (None when hearing is off)."""
    if ears is None:
        return None
    target, heard = ears.target[j], ears.heard[j]
    extra = res.mu.new_zeros(())
    if cfg.sound_weight > 0:
        extra = extra + cfg.sound_weight * sound_error(model, ears.proxy, res, target, heard, cfg.straight_through)
    if cfg.distance_weight > 0:
        extra = extra + cfg.distance_weight * distance_error(res.mu, target, heard)
    return extra


def _write_curve(out_dir: Path, rows: list[dict[str, float]]) -> None:
    write_loss_csv(out_dir / "loss_curve.csv", rows)
    # Figure + Agg canvas directly: no pyplot, so no global backend state is touched.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.6), dpi=100)
    FigureCanvasAgg(fig)
    epochs = [r["epoch"] for r in rows]
    ax = fig.add_subplot(1, 2, 1)
    ax.plot(epochs, [r["train_loss"] for r in rows], label="train")
    ax.plot(epochs, [r["val_loss"] for r in rows], label="validation")
    ax.set(xlabel="epoch", ylabel="loss (per preset)", title="Loss (beta x KL, after warm-up)")
    ax.legend()
    bx = fig.add_subplot(1, 2, 2)
    for key, label in (
        ("val_categorical", "cross-entropy"),
        ("val_continuous", "squared error"),
        ("val_kl", "KL"),
    ):
        bx.plot(epochs, [r[key] for r in rows], label=label)
    bx.set(xlabel="epoch", title="Validation terms")
    bx.legend()
    fig.tight_layout()
    fig.savefig(out_dir / "loss_curve.png")


def latent_bounds(z: npt.NDArray[np.float64], quantile: float, margin: float) -> tuple[npt.NDArray[np.float64],
                                                                                   npt.NDArray[np.float64]]:
    """The latent rectangle the unit square maps to: the ``quantile`` and ``1 - quantile`` quantiles of the
    posterior means ``z`` per axis, widened by ``margin`` of that range on each side."""
    lo, hi = np.quantile(z, quantile, axis=0), np.quantile(z, 1.0 - quantile, axis=0)
    pad = margin * (hi - lo)
    return lo - pad, hi + pad


def _square(model: PatchVAE, x: torch.Tensor, cfg: TrainConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The corner and the size of the latent square the presets ``x`` now encode to (as the checkpoint's bounds)."""
    with torch.no_grad():
        mu, _ = model.encode(x)
    lo, hi = latent_bounds(mu.numpy().astype(np.float64), cfg.bounds_quantile, cfg.margin)
    return torch.as_tensor(lo, dtype=torch.float32), torch.as_tensor(hi - lo, dtype=torch.float32)


def poly_error(model: PatchVAE, points: torch.Tensor, group: int) -> torch.Tensor:
    """Cross-entropy of the keyboard mode decoded at ``points`` against poly (level 0).

    The proxy hears one note, so it cannot hear the keyboard mode, and the square term alone leaves it
    to chance away from the presets: a mono patch plays one finger at a time.
    """
    _, logits = model.decode(points)
    grid = model.padded_logits(logits)[:, group]
    result: torch.Tensor = torch.nn.functional.cross_entropy(grid, torch.zeros(len(grid), dtype=torch.long))
    return result


def _split(n: int, val_fraction: float, seed: int) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    order = np.random.default_rng(seed).permutation(n)
    n_val = max(1, round(n * val_fraction))
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def train(
    out_dir: str | os.PathLike[str],
    *,
    banks: Sequence[str | os.PathLike[str]] = DEFAULT_FACTORY_DIRS,
    epochs: int = TrainConfig.epochs,
    seed: int = TrainConfig.seed,
    batch_size: int = TrainConfig.batch_size,
    lr: float = TrainConfig.lr,
    hidden: Sequence[int] = TrainConfig.hidden,
    beta: float = TrainConfig.beta,
    warmup_epochs: int = TrainConfig.warmup_epochs,
    continuous_weight: float = TrainConfig.continuous_weight,
    val_fraction: float = TrainConfig.val_fraction,
    margin: float = TrainConfig.margin,
    bounds_quantile: float = TrainConfig.bounds_quantile,
    threads: int = TrainConfig.threads,
    sound_weight: float = TrainConfig.sound_weight,
    distance_weight: float = TrainConfig.distance_weight,
    renderer: str = TrainConfig.renderer,
    proxy_epochs: int = TrainConfig.proxy_epochs,
    straight_through: bool = TrainConfig.straight_through,
    square_weight: float = TrainConfig.square_weight,
    path_weight: float = TrainConfig.path_weight,
    path_steps: int = TrainConfig.path_steps,
    path_reach: float = TrainConfig.path_reach,
    path_ends: str = TrainConfig.path_ends,
    ratings: str | os.PathLike[str] | None = TrainConfig.ratings,
    index_grid: int = TrainConfig.index_grid,
    index_anchor: float = TrainConfig.index_anchor,
    lattice_ratings: str | os.PathLike[str] | None = TrainConfig.lattice_ratings,
    hearing_cache: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> Path:
    """Train on the deduplicated presets of the bank directories ``banks``; return the checkpoint's path.

    ``hearing_cache`` (an .npz) keeps the renders of a hearing run for the next one with the same
    training presets; it changes nothing in the result.
    """
    cfg = TrainConfig(
        epochs, seed, batch_size, lr, tuple(int(h) for h in hidden), beta, warmup_epochs,
        continuous_weight, val_fraction, margin, bounds_quantile, threads, sound_weight, distance_weight, renderer,
        proxy_epochs, straight_through, square_weight, path_weight, path_steps,
        path_reach, path_ends, None if ratings is None else str(ratings), index_grid, index_anchor,
        None if lattice_ratings is None else str(lattice_ratings),
    )  # fmt: skip
    if epochs < 1 or batch_size < 1 or not 0.0 < val_fraction < 1.0 or proxy_epochs < 1:
        raise ValueError(f"invalid training settings: {cfg}")
    if sound_weight < 0 or distance_weight < 0 or square_weight < 0 or path_weight < 0:
        raise ValueError(f"sound_weight, distance_weight, square_weight and path_weight must be non-negative, got "
                         f"{sound_weight}, {distance_weight}, {square_weight} and {path_weight}")
    if path_steps < 3:
        raise ValueError(f"path_steps {path_steps}: expected at least 3 (a second difference needs three points)")
    if not 0.0 < path_reach <= 1.0:
        raise ValueError(f"path_reach {path_reach}: expected over 0 and at most 1 (a share of the way to another "
                         "point)")
    if path_ends not in ("square", "presets"):
        raise ValueError(f"path_ends {path_ends!r}: expected 'square' or 'presets'")
    if not 0.0 <= bounds_quantile < 0.5:
        raise ValueError(f"bounds_quantile {bounds_quantile}: expected at least 0 and under 0.5")
    if index_grid < 0 or index_grid == 1:
        raise ValueError(f"index_grid {index_grid}: expected 0 (no sound index) or at least 2")
    if not (index_anchor >= 0 and np.isfinite(index_anchor)):
        raise ValueError(f"index_anchor {index_anchor}: expected a finite number at least 0")
    indexed = ratings is not None and index_grid > 0
    rated = load_ratings(ratings) if indexed and ratings is not None else None
    rated_lattice = load_lattice_ratings(lattice_ratings) if indexed and lattice_ratings is not None else None
    if renderer not in RENDERERS:
        raise ValueError(f"unknown renderer {renderer!r}; expected one of {', '.join(RENDERERS)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    library = PresetLibrary(banks)
    values = library.values()
    codec = PatchCodec()
    train_idx, val_idx = _split(len(values), val_fraction, seed)
    train_data, val_data = _tensors(codec, values[train_idx]), _tensors(codec, values[val_idx])
    config: dict[str, Any] = {
        "n_continuous": codec.n_continuous,
        "group_sizes": codec.group_sizes,
        "latent_dim": 2,
        "hidden": list(cfg.hidden),
    }
    rows: list[dict[str, float]] = []
    log = (lambda m: tqdm.write(m)) if progress else (lambda _: None)
    with reproducible(seed, threads):
        ears, held = None, None
        if sound_weight > 0 or distance_weight > 0:
            ears = prepare(values[train_idx], codec, seed=seed, renderer=renderer, proxy_epochs=proxy_epochs,
                           cache=None if hearing_cache is None else Path(hearing_cache), log=log)
            torch.manual_seed(seed)  # the VAE starts from the same weights whether or not it hears
            if square_weight > 0:
                held = held_targets(ears, values[train_idx], HOLDS_NOTE)
        # Both the square and the path term draw over the square the presets encode to.
        plays_square = ears is not None and (square_weight > 0 or path_weight > 0)
        poly_group = next(k for k, g in enumerate(codec.groups) if g.param == params.INDEX["keyboard_mode"])
        # Its own stream, so a run without the square term draws exactly what it drew before.
        square_rng = torch.Generator().manual_seed(seed + 1)
        path_rng = torch.Generator().manual_seed(seed + 2)
        model = registry.create("patch-vae", **config)
        assert isinstance(model, PatchVAE)
        optimiser = torch.optim.Adam(model.parameters(), lr=lr)
        shuffle = torch.Generator().manual_seed(seed)
        n = len(train_idx)
        bar = tqdm(range(1, epochs + 1), desc="patch-vae", unit="epoch", disable=not progress, leave=False)
        for epoch in bar:
            # KL warm-up: let the decoder learn to use z before the prior pulls posteriors together.
            b = beta * min(1.0, epoch / warmup_epochs) if warmup_epochs > 0 else beta
            model.train()
            order = torch.randperm(n, generator=shuffle)
            # The square moves as the encoder learns: each epoch draws over where the presets are now.
            corner, size = _square(model, train_data.x, cfg) if plays_square else (None, None)
            for start in range(0, n, batch_size):
                j = order[start : start + batch_size]
                res = model(train_data.x[j])
                loss = vae_loss(model, res, train_data.cont[j], train_data.cls[j], beta=b,
                                continuous_weight=continuous_weight)  # fmt: skip
                extra = _hearing_terms(model, res, ears, j, cfg)
                if ears is not None and corner is not None and size is not None:
                    if held is not None:
                        points = corner + torch.rand(len(j), 2, generator=square_rng) * size
                        sq = square_weight * (square_error(model, ears.proxy, points, held, cfg.straight_through)
                                              + poly_error(model, points, poly_group))
                        extra = sq if extra is None else extra + sq
                    if path_weight > 0:
                        if cfg.path_ends == "presets":
                            # Detached: the term shapes how the map sounds between presets, not where
                            # the encoder puts them (closer presets would make every path short).
                            here = res.mu.detach()
                            ends = torch.stack([here, here[torch.randperm(len(j), generator=path_rng)]])
                        else:
                            ends = corner + torch.rand(2, len(j), 2, generator=path_rng) * size
                        # Segments of every length up to ``path_reach`` of the way to another point: short
                        # ones catch jumps between neighbours, long ones the bends a preset-to-preset path takes.
                        reach = torch.rand(len(j), 1, generator=path_rng) * path_reach
                        pe = path_weight * path_error(model, ears.proxy, ends[0], ends[0] + reach * (ends[1] - ends[0]),
                                                      path_steps, cfg.straight_through)
                        extra = pe if extra is None else extra + pe
                optimiser.zero_grad(set_to_none=True)
                torch.autograd.backward(loss.total if extra is None else loss.total + extra)
                optimiser.step()
            tr = _epoch_losses(model, train_data, cfg, beta, ears)
            va = _epoch_losses(model, val_data, cfg, beta)
            rows.append({"epoch": epoch, **{f"train_{k}": v for k, v in tr.items()},
                         **{f"val_{k}": v for k, v in va.items()}})  # fmt: skip
            bar.set_postfix(train=f"{tr['loss']:.3f}", val=f"{va['loss']:.3f}")
        bar.close()
        metrics = {
            "validation": evaluate(model, codec, values[val_idx], values[train_idx]),
            "train": evaluate(model, codec, values[train_idx], values[train_idx]),
        }
        with torch.inference_mode():
            mu, _ = model.encode(_tensors(codec, values).x)
        z = mu.numpy().astype(np.float64)
    lo, hi = latent_bounds(z, bounds_quantile, margin)
    index = None
    if rated is not None:
        with reproducible(seed, threads):
            index = sound_index(model, rated, library, train_idx, (lo, hi), cfg, log,
                                None if hearing_cache is None else Path(hearing_cache), rated_lattice)
    metadata: dict[str, Any] = {
        "codec": codec.layout(),
        "latent_low": lo.tolist(),
        "latent_high": hi.tolist(),
        "latent_bounds_rule": f"{bounds_quantile:.0%} to {1 - bounds_quantile:.0%} quantiles of all library presets' "
                              f"posterior means per axis, {margin:.0%} of that range added per side",
        "training": {**asdict(cfg), "hidden": list(cfg.hidden)},
        "data": {
            "factory_dirs": [str(d) for d in banks],
            "banks": list(library.report.banks),
            "presets_read": library.report.factory_total,
            "presets_unique": library.report.factory_unique,
            "n_train": len(train_idx),
            "n_validation": len(val_idx),
        },
        "metrics": metrics,
        "final_losses": rows[-1],
        "hearing": None if ears is None else ears.report,
        "sound_index": index,
        "n_weights": sum(p.numel() for p in model.parameters()),
        "torch_version": str(torch.__version__),
    }
    ckpt = out / CHECKPOINT_NAME
    digest = save_checkpoint(ckpt, "patch-vae", config, model, metadata)
    _write_curve(out, rows)
    write_patch_vae_card(out / "MODEL_CARD.md", metadata, config, digest, ckpt.name, rows)
    return ckpt


def sound_index(model: PatchVAE, rated: Ratings, library: PresetLibrary, train_idx: npt.NDArray[np.intp],
                bounds: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]], cfg: TrainConfig,
                log: Callable[[str], None], cache: Path | None,
                rated_lattice: LatticeRatings | None = None) -> dict[str, Any]:
    """Hear the lattice and the library, fit the rating head on the rated training presets (and the
    lattice points ``rated_lattice`` rated), place the library, and return the index's checkpoint form.

    amSynth renders some presets differently each time (noise, random LFO phases), so the index's
    descriptors are kept beside the hearing cache (``<cache>-index.npz``) for a run that must repeat one.
    """
    train_names = {library.qualified_name(int(i)): int(i) for i in train_idx}
    outside = [n for n in rated.names if n not in train_names]
    if outside:
        raise RatingsError(f"{len(outside)} rated presets are not in the training split (first: {outside[0]}); the "
                           "head may only learn from presets the map trains on (rate them with the same banks, seed "
                           "and validation fraction)")
    values = library.values()
    points = lattice(bounds[0], bounds[1], cfg.index_grid)
    space = PatchSpace(model, bounds[0], bounds[1], torch.device("cpu"))
    log(f"sound index: hearing a {cfg.index_grid}x{cfg.index_grid} grid and the {len(values)} library presets")
    kept = None if cache is None else cache.with_name(f"{cache.stem}-index.npz")
    decoded = space.decode_latent(points)
    heard = hear_cached(np.concatenate([decoded, values]), cfg.renderer, kept, log,
                        patch_rating_descriptor.hear, patch_rating_descriptor.CACHE_TAG)
    on_lattice, in_library = heard[: len(points)], heard[len(points) :]
    rows = np.array([train_names[n] for n in rated.names])
    sounds = np.isfinite(in_library[rows]).all(axis=1)  # a rated preset that renders silence here teaches nothing
    measured = np.full((len(points), len(rated.values[0])), np.nan) if rated_lattice is None else \
        rated_lattice.known(decoded)
    teaches = np.isfinite(measured).all(axis=1) & np.isfinite(on_lattice).all(axis=1)
    head, head_report = fit_head(np.concatenate([in_library[rows[sounds]], on_lattice[teaches]]),
                                 np.concatenate([rated.values[sounds], measured[teaches]]), seed=cfg.seed)
    log("sound index: rating head cross-validated R² " + ", ".join(f"{q} {v:.2f}" for q, v in
                                                                   head_report["cv_r2"].items()))
    if rated_lattice is not None:
        log(f"sound index: {int(teaches.sum())} of {len(points)} lattice points rated in {cfg.lattice_ratings}")
    anchor = Anchor(space.posterior_mean(values), bounds[0], bounds[1], cfg.index_anchor)
    spread = np.array(list(head_report["spread"].values()))
    index = build_index(points, on_lattice, values, in_library, head, anchor, measured / spread)
    report = {"grid": cfg.index_grid, "anchor": cfg.index_anchor, "renderer": cfg.renderer,
              "ratings_sha256": rated.sha256, "rating_head": head_report, "placed": len(index.placed),
              "silent_points": int((~np.isfinite(index.qualities).all(axis=1)).sum()),
              "lattice_rated": int(teaches.sum()),
              "lattice_ratings_sha256": None if rated_lattice is None else rated_lattice.sha256}
    return index.to_metadata(report)


def run(ns: argparse.Namespace) -> Path:
    """Train from parsed :func:`add_arguments` options."""
    return train(
        ns.out, banks=ns.banks, epochs=ns.epochs, seed=ns.seed, batch_size=ns.batch_size, lr=ns.lr,
        hidden=ns.hidden, beta=ns.beta, warmup_epochs=ns.warmup_epochs,
        continuous_weight=ns.continuous_weight, val_fraction=ns.val_fraction, bounds_quantile=ns.bounds_quantile,
        threads=ns.threads, square_weight=ns.square_weight, path_weight=ns.path_weight,
        path_steps=ns.path_steps, path_reach=ns.path_reach, path_ends=ns.path_ends, ratings=ns.ratings or None,
        index_grid=ns.index_grid, index_anchor=ns.index_anchor, lattice_ratings=ns.lattice_ratings or None,
        sound_weight=ns.sound_weight, distance_weight=ns.distance_weight, renderer=ns.renderer,
        proxy_epochs=ns.proxy_epochs, straight_through=ns.straight_through,
        hearing_cache=ns.hearing_cache, progress=not ns.quiet,
    )  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m timbrespace.models.train_patch_vae``."""
    parser = argparse.ArgumentParser(prog="timbrespace train patch-vae", description=__doc__)
    add_arguments(parser)
    path = run(parser.parse_args(argv))
    print(f"wrote {path} (see {path.parent / 'MODEL_CARD.md'})")
    return 0


if __name__ == "__main__":
    import sys

    from timbrespace.cli import main as cli_main

    # Through the CLI, so a user's mistake (a bad ratings file, a missing folder) is one line, not a traceback.
    raise SystemExit(cli_main(["train", "patch-vae", *sys.argv[1:]]))
