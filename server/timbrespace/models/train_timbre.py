"""Train the timbre GMVAE on the rendered soundfont notes and write a shippable model directory.

``train(out_dir, ...)`` is seeded and deterministic (one process, fixed thread
count) and writes ``timbre-gmvae.pt`` (+ ``.sha256``), ``loss_curve.csv``/``.png``
and ``MODEL_CARD.md``.  Under ``torchrun`` (WORLD_SIZE > 1) it trains with
DistributedDataParallel (gloo on CPU, nccl on CUDA) and rank 0 writes.
Command line: ``python -m timbrespace.models.train_timbre`` (``timbrespace train timbre``).
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import TensorDataset
from torch.utils.data.distributed import DistributedSampler
from tqdm import tqdm

from timbrespace.models import registry
from timbrespace.models.checkpoint import save_checkpoint
from timbrespace.models.model_card import write_loss_csv, write_timbre_gmvae_card
from timbrespace.models.probes import macro_f1, probe_f1
from timbrespace.models.seeding import reproducible
from timbrespace.models.timbre_features import DEFAULT_CACHE, DEFAULT_MANIFEST, NoteSet, load_notes
from timbrespace.models.timbre_gmvae import ElboTerms, TimbreGMVAE
from timbrespace.models.timbre_unseen import measure_sets
from timbrespace.models.train_timbre_options import FLAGS, TrainConfig, add_arguments, retrain_command

CHECKPOINT_NAME = "timbre-gmvae.pt"
TERMS = ("loss", "recon", "kl_pitch", "kl_timbre", "kl_y", "mean_recon")


@dataclass(frozen=True)
class _Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def active(self) -> bool:
        return self.world > 1


def _init_distributed() -> _Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist()
    cuda = torch.cuda.is_available()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}") if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    return _Dist(dist.get_rank(), dist.get_world_size(), device)


def labelled_mask(instrument: npt.NDArray[np.int64], fraction: float, seed: int) -> npt.NDArray[np.bool_]:
    """Which notes keep their instrument label: ``fraction`` of each instrument (at least one), seeded."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"label fraction {fraction} is not in [0, 1]")
    rng = np.random.default_rng(seed + 7919)
    keep = np.zeros(len(instrument), dtype=np.bool_)
    for k in np.unique(instrument):
        idx = rng.permutation(np.flatnonzero(instrument == k))
        keep[idx[: max(1, math.ceil(fraction * len(idx))) if fraction > 0 else 0]] = True
    return keep


@dataclass(frozen=True)
class _Tensors:
    logmel: torch.Tensor
    pitch_index: torch.Tensor
    velocity: torch.Tensor
    instrument: torch.Tensor  # -1 where the label is hidden
    means: torch.Tensor  # bool: the note places its instrument's mean and is decoded from it (TrainConfig.means_from)


def _tensors(
    notes: NoteSet, idx: npt.NDArray[np.intp], pitches: list[int], labels: npt.NDArray[np.bool_], device: torch.device,
    means_from: str,
) -> _Tensors:
    lookup = {p: j for j, p in enumerate(pitches)}
    return _Tensors(
        torch.as_tensor(notes.logmel[idx], device=device),
        torch.as_tensor([lookup[int(p)] for p in notes.pitch[idx]], dtype=torch.long, device=device),
        torch.as_tensor(notes.velocity[idx], dtype=torch.float32, device=device),
        torch.as_tensor(np.where(labels[idx], notes.instrument[idx], -1), dtype=torch.long, device=device),
        torch.as_tensor(means_rows(notes, idx, means_from), device=device),
    )


def means_rows(notes: NoteSet, idx: npt.NDArray[np.intp], means_from: str) -> npt.NDArray[np.bool_]:
    """Which of the notes ``idx`` place their instrument's mean and are decoded from it: all of them, or
    ("clean") those not augmented, unless an instrument has no such note (then all of its notes).

    Why "clean": in a mix, two of three notes are room and microphone copies, so means fitted to every
    note sit at an average of rooms, and decoding them plays that average; an instrument's mean should
    sound like the instrument, while the copies still teach the encoder to place a roomy note near it."""
    if means_from not in ("clean", "all"):
        raise ValueError(f"means_from: expected 'clean' or 'all', got {means_from!r}")
    out = np.ones(len(idx), dtype=np.bool_)
    if means_from == "all":
        return out
    clean, inst = ~notes.augmented[idx], notes.instrument[idx]
    for k in np.unique(inst):
        here = inst == k
        if clean[here].any():
            out[here] = clean[here]
    return out


def epoch_order(n: int, count: int, epoch: int, seed: int) -> torch.Tensor:
    """The training notes of ``epoch`` (from 1): all ``n`` shuffled when ``count`` is 0 or at least ``n``,
    else the epoch's ``count`` consecutive entries of an endless stream of seeded permutations, so every
    note is drawn once before any is drawn twice, and each epoch's notes depend only on (seed, epoch).
    """
    if count <= 0 or count >= n:
        count = n
    start = (epoch - 1) * count
    out: list[torch.Tensor] = []
    while count > 0:
        lap, offset = divmod(start, n)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + lap))
        take = perm[offset : offset + count]
        out.append(take)
        start += len(take)
        count -= len(take)
    return torch.cat(out)


def scored_frames(n_frames: int, count: int, block: int, generator: torch.Generator) -> torch.Tensor:
    """About ``count`` of ``n_frames`` frame indices (sorted) in runs of ``block``: the frames cut into runs
    at a random offset, and ``ceil(count / block)`` runs drawn, so every frame is equally likely."""
    offset = int(torch.randint(block, (1,), generator=generator))
    cuts = sorted({0, n_frames, *range(offset, n_frames, block)})
    runs = [torch.arange(a, b) for a, b in itertools.pairwise(cuts)]
    pick = torch.randperm(len(runs), generator=generator)[: max(1, math.ceil(count / block))]
    return torch.cat([runs[int(i)] for i in pick]).sort().values


def refit_timbre_means(model: TimbreGMVAE, data: _Tensors, batch: int = 256) -> None:
    """Set each timbre mixture mean to its optimum for the ELBO's KL term, given the encoder: the
    average posterior mean of its notes (labelled notes by their label, the others weighted by
    q(y_t|X)).

    Why: by gradient alone (Adam, lr 1e-3) the means trailed 1.5-2 units behind the notes they
    describe, and a note decoded from an instrument's mean was recognised as that instrument
    (by the evaluation's CNN) 65% of the time, against 82% from the encoded notes' centroid.
    Every rank holds all training notes and the same weights, so every rank computes the same means.
    """
    was_training = model.training
    model.eval()
    with torch.no_grad():
        mus = torch.cat([model.encode(data.logmel[s : s + batch]).mu_t for s in range(0, data.logmel.shape[0], batch)])
        q = model.instrument_posterior(mus)
        labelled = data.instrument >= 0
        onehot = F.one_hot(data.instrument.clamp_min(0), model.n_instruments).to(q.dtype)
        w = torch.where(labelled.unsqueeze(1), onehot, q) * data.means.unsqueeze(1).to(q.dtype)
        mass = w.sum(0)
        fitted = (w.t() @ mus) / mass.clamp_min(1e-12).unsqueeze(1)
        keep = (mass > 1e-6).unsqueeze(1)  # a component no note belongs to stays where it is
        model.timbre_means.copy_(torch.where(keep, fitted, model.timbre_means))
    model.train(was_training)


def _sum_terms(t: ElboTerms) -> torch.Tensor:
    return torch.stack(
        [t.total.sum(), t.recon.sum(), t.kl_pitch.sum(), t.kl_timbre.sum(), t.kl_y.sum(), t.mean_recon.sum()]
    )


def evaluate_terms(model: TimbreGMVAE, data: _Tensors, batch: int = 128, mean_weight: float = 0.0) -> dict[str, float]:
    """Mean negative-ELBO terms per note through the posterior means, on all decoder frames."""
    model.eval()
    frames = torch.arange(model.spec.dec_frames, device=data.logmel.device)
    total = torch.zeros(len(TERMS), dtype=torch.float64)
    n = data.logmel.shape[0]
    with torch.inference_mode():
        for s in range(0, n, batch):
            sl = slice(s, s + batch)
            t = model(
                data.logmel[sl],
                frames,
                data.pitch_index[sl],
                data.velocity[sl],
                data.instrument[sl],
                sample=False,
                mean_weight=mean_weight,
                mean_rows=data.means[sl],
            )
            total += _sum_terms(t).double().cpu()
    return {k: float(v) / max(n, 1) for k, v in zip(TERMS, total, strict=True)}


def _latents(model: TimbreGMVAE, logmel: torch.Tensor, batch: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    model.eval()
    zt, zp = [], []
    with torch.inference_mode():
        for s in range(0, logmel.shape[0], batch):
            post = model.encode(logmel[s : s + batch])
            zt.append(post.mu_t.cpu())
            zp.append(post.mu_p.cpu())
    return torch.cat(zt), torch.cat(zp)


def latent_metrics(
    model: TimbreGMVAE, notes: NoteSet, train_idx: npt.NDArray[np.intp], val_idx: npt.NDArray[np.intp], seed: int
) -> dict[str, Any]:
    """Validation F1 (macro) of linear probes trained on the training notes' posterior means, and of the mixtures."""
    logmel = torch.as_tensor(notes.logmel)
    zt, zp = _latents(model, logmel)
    y_inst, y_pitch = notes.instrument, notes.pitch
    out: dict[str, Any] = {}
    for name, z, y in (
        ("instrument_from_zt", zt, y_inst),
        ("pitch_from_zp", zp, y_pitch),
        ("pitch_from_zt", zt, y_pitch),
        ("instrument_from_zp", zp, y_inst),
    ):
        f1, acc = probe_f1(z[train_idx], y[train_idx], z[val_idx], y[val_idx], seed=seed)
        out[name] = {"f1": f1, "accuracy": acc}
    # The mixtures themselves as classifiers: most responsible instrument, nearest pitch mean.
    with torch.inference_mode():
        gmm_inst = model.instrument_posterior(zt[val_idx]).argmax(1).numpy()
        d = torch.cdist(zp[val_idx], model.pitch_means.detach().cpu())
        gmm_pitch = np.asarray(model.pitches)[d.argmin(1).numpy()]
    out["instrument_from_gmm"] = {
        "f1": macro_f1(y_inst[val_idx], gmm_inst),
        "accuracy": float(np.mean(gmm_inst == y_inst[val_idx])),
    }
    out["pitch_from_gmm"] = {
        "f1": macro_f1(y_pitch[val_idx], gmm_pitch),
        "accuracy": float(np.mean(gmm_pitch == y_pitch[val_idx])),
    }
    return out


def _write_curve(out_dir: Path, rows: list[dict[str, float]]) -> None:
    write_loss_csv(out_dir / "loss_curve.csv", rows)
    # Figure + Agg canvas directly: no pyplot, so no global backend state is touched.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.6), dpi=100)
    FigureCanvasAgg(fig)
    epochs = [r["epoch"] for r in rows]
    validated = [r for r in rows if "val_loss" in r]  # every val_every epochs
    val_epochs = [r["epoch"] for r in validated]
    ax = fig.add_subplot(1, 2, 1)
    ax.plot(epochs, [r["train_loss"] for r in rows], label="train (running, sampled z)")
    ax.plot(val_epochs, [r["val_loss"] for r in validated], label="validation (posterior means)")
    ax.set(xlabel="epoch", ylabel="negative ELBO per note", yscale="log", title="Loss")
    ax.legend()
    bx = fig.add_subplot(1, 2, 2)
    for key in ("val_kl_pitch", "val_kl_timbre", "val_kl_y"):
        bx.plot(val_epochs, [r[key] for r in validated], label=key[4:])
    bx.set(xlabel="epoch", ylabel="nats per note", title="Validation KL terms")
    bx.legend()
    fig.tight_layout()
    fig.savefig(out_dir / "loss_curve.png")


def train(
    out_dir: str | os.PathLike[str] = "models/timbre-gmvae",
    *,
    manifest: str | os.PathLike[str] = DEFAULT_MANIFEST,
    cache_dir: str | os.PathLike[str] | None = DEFAULT_CACHE,
    progress: bool = True,
    learned_map: bool = True,
    unseen: Sequence[str | os.PathLike[str]] = (),
    **options: Any,
) -> Path:
    """Train on ``manifest``'s notes (its train/valid split); return the checkpoint's path.

    With ``learned_map`` the 2-D map (:mod:`timbrespace.models.train_timbre_map`) is fitted
    to the trained model afterwards (seconds), beside it. Each ``unseen`` manifest (a set never
    trained on) is classified by the trained model's own posterior and its figures go into the
    checkpoint's metadata and the card (:func:`timbrespace.models.timbre_unseen.unseen`); they read the
    weights only.

    ``options`` are :class:`TrainConfig` fields (``epochs``, ``seed``,
    ``label_fraction``, ``threads``, ...).
    """
    cfg = TrainConfig(**options)
    for name in ("epochs", "batch_size", "frames_per_step", "frame_block", "val_every", "threads"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"invalid training settings: {name}={getattr(cfg, name)!r}, expected an integer >= 1")
    if cfg.epoch_notes < 0:
        raise ValueError(f"invalid training settings: epoch_notes={cfg.epoch_notes!r}, expected 0 (all) or more")
    dd = _init_distributed()
    if dd.rank == 0:
        notes = load_notes(manifest, cache_dir=cache_dir)
    if dd.active:
        dist.barrier()  # rank 0 has written the feature cache; the others read it
    if dd.rank != 0:
        notes = load_notes(manifest, cache_dir=cache_dir)
    train_idx, val_idx = np.flatnonzero(notes.train), np.flatnonzero(~notes.train)
    if len(train_idx) == 0 or len(val_idx) == 0:
        raise ValueError(f"{manifest}: needs notes in both splits (train {len(train_idx)}, valid {len(val_idx)})")
    pitches = sorted({int(p) for p in notes.pitch})
    labels = labelled_mask(notes.instrument, cfg.label_fraction, cfg.seed)
    train_logmel = notes.logmel[train_idx]
    config: dict[str, Any] = {
        "pitches": pitches,
        "n_instruments": len(notes.instruments),
        "log_lo": float(train_logmel.min()),
        "log_hi": float(train_logmel.max()),
        "latent_dim": cfg.latent_dim,
        "channels": cfg.channels,
        "hidden": cfg.hidden,
        "dec_hidden": cfg.dec_hidden,
        "n_harmonics": cfg.n_harmonics,
        "n_noise": cfg.n_noise,
        "pitch_prior": cfg.pitch_prior,
        "pitch_recon_grad": cfg.pitch_recon_grad,
        "time_basis": cfg.time_basis,
        "pitch_input": cfg.pitch_input,
        **{k: v for k, v in asdict(notes.spec).items()},
    }
    rows: list[dict[str, float]] = []
    started = time.monotonic()
    with reproducible(cfg.seed, cfg.threads):
        model = registry.create("timbre-gmvae", **config)
        assert isinstance(model, TimbreGMVAE)
        model.to(dd.device)
        model.harmonic_tables()
        wrapped: torch.nn.Module = DistributedDataParallel(model) if dd.active else model
        optimiser = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        tr = _tensors(notes, train_idx, pitches, labels, dd.device, cfg.means_from)
        va = _tensors(notes, val_idx, pitches, np.ones_like(labels), dd.device, cfg.means_from)  # scored with labels
        # The sampler only needs the length; it shards a seeded permutation of note indices across ranks.
        sampler: DistributedSampler[Any] | None = None
        if dd.active and not cfg.epoch_notes:
            index = TensorDataset(torch.arange(len(train_idx)))
            sampler = DistributedSampler(index, num_replicas=dd.world, rank=dd.rank, shuffle=True, seed=cfg.seed)
        shuffle = torch.Generator().manual_seed(cfg.seed)
        frame_rng = torch.Generator().manual_seed(cfg.seed * 1000 + dd.rank + 1)
        n_frames = model.spec.dec_frames
        bar = tqdm(
            range(1, cfg.epochs + 1),
            desc="timbre-gmvae",
            unit="epoch",
            disable=not progress or dd.rank != 0,
            leave=False,
        )
        for epoch in bar:
            model.train()
            if sampler is not None:
                sampler.set_epoch(epoch)
                order = torch.as_tensor(list(iter(sampler)), dtype=torch.long)
            elif cfg.epoch_notes:
                # Every rank draws the same epoch's notes and trains on its share of them.
                order = epoch_order(len(train_idx), cfg.epoch_notes, epoch, cfg.seed)[dd.rank :: dd.world]
            else:
                order = torch.randperm(len(train_idx), generator=shuffle)
            sums = torch.zeros(len(TERMS) + 1, dtype=torch.float64)
            for s in range(0, len(order), cfg.batch_size):
                j = order[s : s + cfg.batch_size].to(dd.device)
                frames = scored_frames(n_frames, cfg.frames_per_step, cfg.frame_block, frame_rng)
                terms: ElboTerms = wrapped(
                    tr.logmel[j],
                    frames.to(dd.device),
                    tr.pitch_index[j],
                    tr.velocity[j],
                    tr.instrument[j],
                    mean_weight=cfg.mean_recon,
                    mean_rows=tr.means[j],
                )
                optimiser.zero_grad(set_to_none=True)
                torch.autograd.backward(terms.total.mean())
                optimiser.step()
                sums += torch.cat([_sum_terms(terms).detach().double().cpu(), torch.tensor([float(len(j))])])
            if dd.active:
                dist.all_reduce(sums)  # gloo reduces CPU tensors; fine for these six numbers
            if cfg.refit_means:
                refit_timbre_means(model, tr)
            row: dict[str, float] = {"epoch": float(epoch)}
            row.update({f"train_{k}": float(v) / float(sums[-1]) for k, v in zip(TERMS, sums[:-1], strict=True)})
            if dd.rank == 0:
                # Validation reads the weights only (posterior means, no random draws): how often it
                # runs does not change what is learned.
                if epoch == 1 or epoch % cfg.val_every == 0 or epoch == cfg.epochs:
                    val = evaluate_terms(model, va, mean_weight=cfg.mean_recon)
                    row.update({f"val_{k}": v for k, v in val.items()})
                    bar.set_postfix(train=f"{row['train_loss']:.0f}", val=f"{row['val_loss']:.0f}")
                row["seconds"] = time.monotonic() - started
                rows.append(row)
        bar.close()
        seconds = time.monotonic() - started
        ckpt = Path(out_dir) / CHECKPOINT_NAME
        if dd.rank == 0:
            model.cpu()
            _finish(model, notes, cfg, config, rows, seconds, train_idx, val_idx, labels, dd, Path(out_dir), manifest,
                    [Path(u) for u in unseen], cache_dir)
    if dd.rank == 0 and learned_map:
        from timbrespace.models.train_timbre_map import train_map

        train_map(ckpt, manifest=manifest, cache_dir=cache_dir, seed=cfg.seed, notes=notes)
    if dd.active:
        dist.barrier()
        dist.destroy_process_group()
    return ckpt


def _finish(
    model: TimbreGMVAE,
    notes: NoteSet,
    cfg: TrainConfig,
    config: dict[str, Any],
    rows: list[dict[str, float]],
    seconds: float,
    train_idx: npt.NDArray[np.intp],
    val_idx: npt.NDArray[np.intp],
    labels: npt.NDArray[np.bool_],
    dd: _Dist,
    out: Path,
    manifest: str | os.PathLike[str],
    unseen: Sequence[Path],
    cache_dir: str | os.PathLike[str] | None,
) -> None:
    from timbrespace.data.mix import source_counts

    pitches = model.pitches
    all_labels = np.ones(len(notes), dtype=np.bool_)
    splits = {
        "train": evaluate_terms(model, _tensors(notes, train_idx, pitches, all_labels, torch.device("cpu"),
                                                  cfg.means_from)),
        "valid": evaluate_terms(model, _tensors(notes, val_idx, pitches, all_labels, torch.device("cpu"),
                                                  cfg.means_from)),
    }
    metadata: dict[str, Any] = {
        "instruments": list(notes.instruments),
        "training": {
            **asdict(cfg),
            "world_size": dd.world,
            "command": retrain_command(cfg, out, manifest, unseen),
            "seconds": seconds,
            "labelled_notes": int(labels[train_idx].sum()),
        },
        "data": {
            "manifest": str(manifest),
            "manifest_sha256": notes.manifest_sha256,
            "n_train": len(train_idx),
            "n_validation": len(val_idx),
            "notes_per_instrument": {
                name: int(np.sum(notes.instrument == k)) for k, name in enumerate(notes.instruments)
            },
            "sources": source_counts(Path(manifest)),
        },
        "elbo": splits,
        "latent_metrics": latent_metrics(model, notes, train_idx, val_idx, cfg.seed),
        "n_weights": sum(p.numel() for p in model.parameters()),
        "torch_version": str(torch.__version__),
        "unseen": measure_sets(model, list(notes.instruments), unseen, cache_dir),
    }
    out.mkdir(parents=True, exist_ok=True)
    ckpt = out / CHECKPOINT_NAME
    digest = save_checkpoint(ckpt, "timbre-gmvae", config, model, metadata)
    _write_curve(out, rows)
    write_timbre_gmvae_card(out / "MODEL_CARD.md", metadata, config, digest, ckpt.name, rows)


def run(ns: argparse.Namespace) -> Path:
    """Train from parsed :func:`add_arguments` options."""
    # Each option's dest is its TrainConfig field, so the table the model card uses serves here too.
    return train(
        ns.out,
        manifest=ns.manifest,
        cache_dir=ns.cache,
        progress=not ns.quiet,
        learned_map=ns.learned_map,
        unseen=ns.unseen,
        **{name: getattr(ns, name) for name in FLAGS},
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m timbrespace.models.train_timbre``."""
    parser = argparse.ArgumentParser(prog="timbrespace train timbre", description=__doc__)
    add_arguments(parser)
    path = run(parser.parse_args(argv))
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"wrote {path} (see {path.parent / 'MODEL_CARD.md'})")
    return 0


if __name__ == "__main__":
    import sys

    from timbrespace.cli import main as cli_main

    # Through the CLI, so a user's mistake (a bad ratings file, a missing folder) is one line, not a traceback.
    raise SystemExit(cli_main(["train", "timbre", *sys.argv[1:]]))
