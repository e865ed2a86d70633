"""``timbrespace train timbre-map``: fit the learned 2-D map of a trained timbre-gmvae.

Reads the GMVAE checkpoint and the notes it was trained on, fits :class:`TimbreMap` to the
training notes' timbre posteriors (seconds on a CPU), measures it on the validation notes
and writes ``timbre-map.pt`` (+ ``.sha256``), ``timbre-map.png`` and ``TIMBRE_MAP.md``
next to the GMVAE.  The map records its GMVAE's sha256: the server refuses a map fitted to
another model.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from timbrespace.fsutil import atomic_write_text
from timbrespace.models.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from timbrespace.models.seeding import reproducible
from timbrespace.models.timbre_features import DEFAULT_CACHE, DEFAULT_MANIFEST, NoteSet, load_notes
from timbrespace.models.timbre_gmvae import TimbreGMVAE
from timbrespace.models.timbre_map import TimbreMap, fit_map, map_path, region_grid

DEFAULT_MODEL = "models/timbre-gmvae/timbre-gmvae.pt"
GRID = 64  # cells per side when measuring each instrument's share of the square


def _posteriors(model: TimbreGMVAE, logmel: npt.NDArray[np.float32], batch: int = 256) -> tuple[torch.Tensor, ...]:
    mus, logvars = [], []
    with torch.inference_mode():
        for s in range(0, len(logmel), batch):
            post = model.encode(torch.as_tensor(logmel[s : s + batch]))
            mus.append(post.mu_t)
            logvars.append(post.logvar_t)
    return torch.cat(mus), torch.cat(logvars)


def measure(gmvae: TimbreGMVAE, tmap: TimbreMap, notes: NoteSet, val_idx: npt.NDArray[np.intp],
            train_idx: npt.NDArray[np.intp]) -> dict[str, Any]:
    """The map's figures: validation notes kept by a round trip, the square's share per instrument."""
    mu_va, _ = _posteriors(gmvae, notes.logmel[val_idx])
    with torch.inference_mode():
        back = tmap.decode(tmap.encode(mu_va)[0])
        # What the map must keep is the instrument the model itself hears in a note (how well the
        # model hears it is Table 1's business).
        kept = (gmvae.instrument_posterior(back).argmax(1) == gmvae.instrument_posterior(mu_va).argmax(1)).numpy()
        err = (back - mu_va).norm(dim=1) / tmap.code_sigma
    regions, _ = region_grid(gmvae, tmap, GRID)
    share = np.bincount(regions.reshape(-1).numpy(), minlength=gmvae.n_instruments) / regions.numel()
    mu_tr, _ = _posteriors(gmvae, notes.logmel[train_idx])
    places = tmap.place(mu_tr).numpy()
    inst = notes.instrument[train_idx]
    return {
        "roundtrip_instrument_kept": float(np.mean(kept)),
        "roundtrip_error_sigma_median": float(err.median()),
        "square_share": {name: float(share[k]) for k, name in enumerate(notes.instruments)},
        "instrument_places": {
            name: [float(v) for v in np.median(places[inst == k], axis=0)] if np.any(inst == k) else None
            for k, name in enumerate(notes.instruments)
        },
    }


def train_map(
    model_path: str | os.PathLike[str] = DEFAULT_MODEL,
    *,
    manifest: str | os.PathLike[str] = DEFAULT_MANIFEST,
    cache_dir: str | os.PathLike[str] | None = DEFAULT_CACHE,
    steps: int = 4000,
    seed: int = 0,
    notes: NoteSet | None = None,
) -> Path:
    """Fit, measure and save the learned map of ``model_path``; return the map's path."""
    loaded = load_checkpoint(model_path)
    gmvae = loaded.model
    if not isinstance(gmvae, TimbreGMVAE):
        raise CheckpointError(f"{model_path}: a timbre-gmvae checkpoint was expected, got {loaded.name!r}")
    notes = notes if notes is not None else load_notes(manifest, cache_dir=cache_dir)
    if notes.manifest_sha256 != loaded.metadata.get("data", {}).get("manifest_sha256", notes.manifest_sha256):
        raise ValueError(f"{manifest}: not the notes {model_path} was trained on (manifest sha256 differs)")
    train_idx, val_idx = np.flatnonzero(notes.train), np.flatnonzero(~notes.train)
    if len(train_idx) < 2 or len(val_idx) == 0:
        raise ValueError(f"{manifest}: needs notes in both splits (train {len(train_idx)}, valid {len(val_idx)})")
    started = time.monotonic()
    with reproducible(seed, 1):
        mu, logvar = _posteriors(gmvae, notes.logmel[train_idx])
        fit = fit_map(mu, logvar, float(np.exp(gmvae.timbre_logvar / 2.0)), steps=steps, seed=seed)
    seconds = time.monotonic() - started
    figures = measure(gmvae, fit.model, notes, val_idx, train_idx)
    out = map_path(model_path)
    first = fit.model.encoder[0]
    assert isinstance(first, torch.nn.Linear)
    config = {"latent_dim": fit.model.latent_dim, "hidden": first.out_features,
              "n_knots": fit.model.knots.shape[1], "code_sigma": fit.model.code_sigma}
    command = f"timbrespace train timbre-map --model {model_path}"
    if str(manifest) != DEFAULT_MANIFEST:
        command += f" --manifest {manifest}"
    if steps != 4000 or seed != 0:
        command += f" --steps {steps} --seed {seed}"
    metadata = {
        "parent_sha256": loaded.sha256,
        "instruments": list(notes.instruments),
        "training": {"steps": steps, "seed": seed, "seconds": seconds, "command": command,
                     "final_recon": fit.final_recon, "final_kl": fit.final_kl, "n_train": len(train_idx)},
        "figures": figures,
        "torch_version": str(torch.__version__),
    }
    digest = save_checkpoint(out, "timbre-map", config, fit.model, metadata)
    write_map_plot(out.with_suffix(".png"), gmvae, fit.model, notes, train_idx)
    atomic_write_text(out.parent / "TIMBRE_MAP.md", map_card(metadata, out.name, digest))
    return out


def write_map_plot(path: Path, gmvae: TimbreGMVAE, tmap: TimbreMap, notes: NoteSet,
                   idx: npt.NDArray[np.intp]) -> None:
    """The square coloured by its most responsible instrument, with notes ``idx`` placed on it."""
    from timbrespace.figures import plot_learned_map

    regions, best = region_grid(gmvae, tmap, 128)
    mu, _ = _posteriors(gmvae, notes.logmel[idx])
    plot_learned_map(path, regions.numpy(), best.double().numpy(), tmap.place(mu).double().numpy(),
                     notes.instrument[idx], list(notes.instruments))


def map_card(metadata: dict[str, Any], name: str, digest: str) -> str:
    """The learned map's model card (Markdown)."""
    f, t = metadata["figures"], metadata["training"]
    share = ", ".join(f"{k} {v:.0%}" for k, v in sorted(f["square_share"].items(), key=lambda kv: -kv[1]))
    places = ", ".join(f"{k} ({v[0]:.2f}, {v[1]:.2f})" for k, v in f["instrument_places"].items() if v)
    lines = [
        "# Model card: timbre-map (the learned 2-D timbre map)",
        "",
        f"`{name}`, sha256 `{digest}`; fitted to the timbre-gmvae with sha256 `{metadata['parent_sha256']}` "
        "(the server uses it only with that model).",
        "",
        "A 2-D VAE over the GMVAE's timbre codes (see `timbrespace.models.timbre_map`): `/map learned`, then "
        "`/latent x y` plays the code its decoder gives at that point of the square. The square reaches the "
        "plane through the training notes' quantiles on each axis: every note lies inside, and area follows the "
        "notes.",
        "",
        f"- Fitted on {t['n_train']} training notes' posteriors, {t['steps']} steps, seed {t['seed']}, "
        f"{t['seconds']:.1f} s; final reconstruction {t['final_recon']:.2f} nats, KL {t['final_kl']:.2f} nats.",
        f"- Retrain: `{t['command']}`",
        f"- Validation notes whose instrument (the GMVAE's most responsible component) survives the trip "
        "through the map: "
        f"{f['roundtrip_instrument_kept']:.1%} (median distance {f['roundtrip_error_sigma_median']:.2f} "
        "component standard deviations).",
        f"- Share of the square where each instrument is the most responsible component: {share}.",
        f"- Median place of each instrument's training notes: {places}.",
        "",
        f"![map]({Path(name).with_suffix('.png').name})",
        "",
        "Limits: two dimensions cannot keep every neighbourhood of 16; instruments the GMVAE holds apart may "
        "meet along a border here, and a border is a blend the training notes never played.",
        "",
    ]
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command-line options of ``timbrespace train timbre-map``."""
    parser.add_argument("--model", default=DEFAULT_MODEL, help="timbre-gmvae checkpoint (default: %(default)s)")
    parser.add_argument("--manifest", default=DEFAULT_MANIFEST, help="its notes (default: %(default)s)")
    parser.add_argument("--cache", default=DEFAULT_CACHE, help="feature cache directory (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m timbrespace.models.train_timbre_map``."""
    parser = argparse.ArgumentParser(prog="timbrespace train timbre-map", description=__doc__)
    add_arguments(parser)
    ns = parser.parse_args(argv)
    path = train_map(ns.model, manifest=ns.manifest, cache_dir=ns.cache, steps=ns.steps, seed=ns.seed)
    print(f"wrote {path} (see {path.parent / 'TIMBRE_MAP.md'})")
    return 0


if __name__ == "__main__":
    import sys

    from timbrespace.cli import main as cli_main

    # Through the CLI, so a user's mistake (a bad ratings file, a missing folder) is one line, not a traceback.
    raise SystemExit(cli_main(["train", "timbre-map", *sys.argv[1:]]))
