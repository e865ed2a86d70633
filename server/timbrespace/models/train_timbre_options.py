"""The timbre model's training settings: their defaults, and the command-line options that set them.

One table (:data:`FLAGS`) ties each :class:`TrainConfig` field to its option, so the parser, the
run and the model card's retrain command cannot drift apart.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from timbrespace.models.timbre_features import DEFAULT_CACHE, DEFAULT_MANIFEST


@dataclass(frozen=True)
class TrainConfig:
    """Every knob of a training run (stored in the checkpoint metadata and the card)."""

    epochs: int = 200  # validation loss still fell at 160
    seed: int = 0
    batch_size: int = 64
    lr: float = 1e-3
    label_fraction: float = 1.0
    frames_per_step: int = 32  # decoder frames scored per note and step (of 129), a fresh random set each step
    frame_block: int = 8  # ...in runs this long: a scored frame needs its 4 neighbours each side decoded
    threads: int = 1  # on a busy 2-core machine 2 threads ran 42 s/epoch vs 5 s with 1 (spin-waiting)
    latent_dim: int = 16
    channels: int = 256  # the paper: 512; 256 halves the convolutions so CPU training fits its budget
    hidden: int = 256
    dec_hidden: int = 512  # valid reconstructions the evaluation CNN recognised: 93% at 256 (160 epochs), 97% here
    n_harmonics: int = 60
    n_noise: int = 48
    pitch_prior: str = "circles"  # or "helix", or "learned" (the paper's); see timbre_pitch
    pitch_recon_grad: bool = False  # the paper's True leaked timbre into z_p (see TimbreGMVAE)
    refit_means: bool = True  # timbre means set to their closed-form optimum each epoch (refit_timbre_means)
    time_basis: str = "smooth"  # or "embedding": a free vector per frame (see timbre_gmvae.smooth_time_basis)
    pitch_input: str = "salience"  # or "mel" (the paper's; see timbre_pitch.HarmonicSalience)
    mean_recon: float = 1.0  # weight of decoding each note from its mixture means too (see TimbreGMVAE.forward)
    #: Which training notes place the timbre means and are decoded from them: "clean" (the notes as their
    #: sources played them, when the set has augmented copies) or "all". Same thing for an unaugmented set.
    means_from: str = "clean"
    val_every: int = 5  # validate after epoch 1, every this many, and the last; each pass costs ~1 s of ~8
    epoch_notes: int = 0  # training notes per epoch (0: all); a larger set's epochs then cost what one set's did


#: TrainConfig fields and the command-line options that set them (dest = field name).
FLAGS = {"epochs": "--epochs", "seed": "--seed", "label_fraction": "--label-fraction", "threads": "--threads",
          "pitch_prior": "--pitch-prior", "pitch_recon_grad": "--pitch-recon-grad", "refit_means": "--refit-means",
          "time_basis": "--time-basis", "pitch_input": "--pitch-input", "mean_recon": "--mean-recon",
          "means_from": "--means-from",
          "frame_block": "--frame-block", "dec_hidden": "--dec-hidden", "val_every": "--val-every",
          "channels": "--channels", "batch_size": "--batch-size", "lr": "--lr", "epoch_notes": "--epoch-notes"}


def retrain_command(cfg: TrainConfig, out: Path, manifest: str | os.PathLike[str],
                    unseen: Sequence[Path] = ()) -> str:
    """The ``timbrespace train timbre`` arguments that train ``cfg`` again (defaults left out)."""
    words = ["--out", str(out)]
    if str(manifest) != DEFAULT_MANIFEST:
        words += ["--manifest", str(manifest)]
    for u in unseen:
        words += ["--unseen", str(u)]
    default = TrainConfig()
    for name, flag in FLAGS.items():
        value = getattr(cfg, name)
        if value == getattr(default, name):
            continue
        if isinstance(value, bool):
            words.append(flag if value else "--no-" + flag[2:])
        else:
            words += [flag, str(value)]
    missing = [f for f in asdict(cfg) if f not in FLAGS and getattr(cfg, f) != getattr(default, f)]
    if missing:  # set through train(...) in Python only
        words.append("# and in Python: " + ", ".join(f"{f}={getattr(cfg, f)!r}" for f in missing))
    return " ".join(words)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command-line options of ``timbrespace train timbre``."""
    d = TrainConfig()
    parser.add_argument("--manifest", default=DEFAULT_MANIFEST, help="soundfont manifest (default: %(default)s)")
    parser.add_argument("--out", default="models/timbre-gmvae", help="output directory (default: %(default)s)")
    parser.add_argument("--cache", default=DEFAULT_CACHE, help="feature cache directory (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=d.epochs)
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument(
        "--label-fraction",
        type=float,
        default=d.label_fraction,
        help="fraction of training notes whose instrument label is used (default: %(default)s)",
    )
    parser.add_argument("--threads", type=int, default=d.threads)
    parser.add_argument("--pitch-prior", choices=("helix", "circles", "learned"), default=d.pitch_prior)
    parser.add_argument(
        "--pitch-recon-grad",
        action=argparse.BooleanOptionalAction,
        default=d.pitch_recon_grad,
        help="let the reconstruction's gradient reach the pitch encoder, as the paper does (default: %(default)s)",
    )
    parser.add_argument(
        "--refit-means",
        action=argparse.BooleanOptionalAction,
        default=d.refit_means,
        help="set the timbre means to their notes' average posterior mean after each epoch (default: %(default)s)",
    )
    parser.add_argument(
        "--time-basis",
        choices=("smooth", "embedding"),
        default=d.time_basis,
        help="how the decoder sees time: smooth fixed functions or a learned vector per frame (default: %(default)s)",
    )
    parser.add_argument(
        "--pitch-input",
        choices=("salience", "mel"),
        default=d.pitch_input,
        help="what the pitch encoder reads: harmonic sums of the log-mel, or the log-mel (default: %(default)s)",
    )
    parser.add_argument(
        "--mean-recon",
        type=float,
        default=d.mean_recon,
        help="weight of also decoding each labelled note from its instrument and pitch means (default: %(default)s)",
    )
    parser.add_argument(
        "--means-from",
        choices=("clean", "all"),
        default=d.means_from,
        help="training notes that place the instrument means and are decoded from them: the notes as rendered "
        "(clean; augmented room, microphone and shifted copies left out) or all (default: %(default)s)",
    )
    parser.add_argument(
        "--frame-block",
        type=int,
        default=d.frame_block,
        help="scored frames come in runs this long (default: %(default)s)",
    )
    parser.add_argument(
        "--val-every",
        type=int,
        default=d.val_every,
        help="validate after epoch 1, every this many epochs and the last; does not change the weights "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--epoch-notes",
        type=int,
        default=d.epoch_notes,
        help="training notes drawn per epoch, every note once before any twice; 0: all (default: %(default)s)",
    )
    parser.add_argument("--dec-hidden", type=int, default=d.dec_hidden, help="decoder width (default: %(default)s)")
    parser.add_argument("--channels", type=int, default=d.channels, help="encoder channels (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=d.batch_size)
    parser.add_argument("--lr", type=float, default=d.lr)
    parser.add_argument(
        "--learned-map",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="fit the learned 2-D timbre map beside the model afterwards, seconds (default: %(default)s)",
    )
    parser.add_argument(
        "--unseen",
        action="append",
        default=[],
        metavar="F",
        help="the manifest of a set never trained on (e.g. TimGM6mb); its figures from the model's own posterior "
        "go into the card; repeatable",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
