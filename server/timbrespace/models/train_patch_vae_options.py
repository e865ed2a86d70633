"""The patch VAE's training settings: their defaults, and the command-line options that set them."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from timbrespace.models.patch_hearing import RENDERERS

__all__ = ["CHECKPOINT_NAME", "DEFAULT_FACTORY_DIRS", "LATTICE_RATINGS", "RATINGS", "TrainConfig", "add_arguments"]

DEFAULT_FACTORY_DIRS = ("/usr/share/amsynth/banks",)
CHECKPOINT_NAME = "patch-vae.pt"  # the name config/default.yaml points at
RATINGS = "models/patch-vae/ratings.json"  # rated training presets for the sound index (--ratings)
LATTICE_RATINGS = "models/patch-vae/lattice-ratings.json"  # the shipped map's rated lattice (--lattice-ratings)


@dataclass(frozen=True)
class TrainConfig:
    """Every knob of a training run (stored in the checkpoint and the card)."""

    epochs: int = 150
    seed: int = 0
    batch_size: int = 128
    lr: float = 2e-3
    hidden: tuple[int, ...] = (256, 128)
    beta: float = 0.25
    warmup_epochs: int = 30
    continuous_weight: float = 3.0
    val_fraction: float = 0.1
    margin: float = 0.05
    # The square the live engine plays: these quantiles of the presets' posterior means (not their
    # extremes: a few outliers stretched it over latent space no preset uses), plus the margin.
    bounds_quantile: float = 0.02
    threads: int = 1
    # Hearing (patch_sound_training): the proxy is fitted on renders of the training split. The
    # defaults are the shipped map's (docs/patch-map.md, "Towards a better map"); 0 turns it off.
    sound_weight: float = 1.0
    distance_weight: float = 0.0
    renderer: str = "amsynth"
    proxy_epochs: int = 150
    straight_through: bool = True  # the proxy hears one-hot categoricals (gradient through the softmax)
    # Random points of the square should sound like some held preset; it needs the proxy, so it is off
    # when nothing hears (sound and distance weights 0: parameters only).
    square_weight: float = 1.0
    # Random segments of the square should sound as if moving at a constant rate (path_error); needs the
    # proxy, as the square term does.
    path_weight: float = 0.0
    path_steps: int = 5
    path_reach: float = 1.0  # segments run this share (at most) of the way to another random point
    # Where the segments run: "square" (between random points of it) or "presets" (from each training
    # preset where it encodes now towards another: the routes /source /target /alpha plays).
    path_ends: str = "square"
    # The sound index (patch_sound_index): presets placed where the map sounds like them, by the
    # rating head fitted on the rated training presets of ``ratings``; no file or grid 0: off.
    ratings: str | None = None
    index_grid: int = 64
    # Among lattice points that sound about as alike, prefer the one near where the encoder places the
    # preset: the weight of the squared unit-square distance to it, against the mean squared difference
    # of the predicted qualities (each over its spread). Near ties then go where the preset's settings
    # put it, so a line between two presets crosses less of the map's variety.
    index_anchor: float = 0.5
    # Rated lattice points (patch_lattice_ratings): their real qualities replace the head's prediction
    # there, and the head learns from them beside the rated presets; no file: predicted everywhere.
    lattice_ratings: str | None = None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command-line options of ``timbrespace train patch-vae``."""
    d = TrainConfig()
    parser.add_argument("--out", default="models/patch-vae", help="output directory (default: %(default)s)")
    parser.add_argument(
        "--banks", nargs="+", default=list(DEFAULT_FACTORY_DIRS), help="factory bank directories"
    )
    parser.add_argument("--epochs", type=int, default=d.epochs)
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--batch-size", type=int, default=d.batch_size)
    parser.add_argument("--lr", type=float, default=d.lr)
    parser.add_argument("--hidden", type=int, nargs="+", default=list(d.hidden))
    parser.add_argument("--beta", type=float, default=d.beta)
    parser.add_argument("--warmup-epochs", type=int, default=d.warmup_epochs)
    parser.add_argument("--continuous-weight", type=float, default=d.continuous_weight)
    parser.add_argument("--val-fraction", type=float, default=d.val_fraction)
    parser.add_argument("--bounds-quantile", type=float, default=d.bounds_quantile,
                        help="the square spans these quantiles of the presets' latent codes per axis, plus a margin "
                        "(0: their extremes; default: %(default)s)")
    parser.add_argument("--threads", type=int, default=d.threads)
    parser.add_argument("--sound-weight", type=float, default=d.sound_weight,
                        help="weight of the heard reconstruction error (proxy of rendered descriptors; 0: off; "
                        "default: %(default)s)")
    parser.add_argument("--distance-weight", type=float, default=d.distance_weight,
                        help="weight of latent distances following sound distances (0: off)")
    parser.add_argument("--renderer", choices=RENDERERS, default=d.renderer,
                        help="what plays the training presets for hearing (default: %(default)s)")
    parser.add_argument("--proxy-epochs", type=int, default=d.proxy_epochs)
    parser.add_argument("--straight-through", action=argparse.BooleanOptionalAction, default=d.straight_through,
                        help="the proxy hears one-hot categoricals (as played), the gradient goes through the softmax "
                        "(default: %(default)s)")
    parser.add_argument("--square-weight", type=float, default=d.square_weight,
                        help="weight of random points of the square sounding like the nearest held preset, through "
                        "the proxy (0: off; off too when nothing hears; default: %(default)s)")
    parser.add_argument("--path-weight", type=float, default=d.path_weight,
                        help="weight of random segments of the square sounding as if moving at a constant rate (the "
                        "proxy's second differences along each; 0: off; off too when nothing hears; default: "
                        "%(default)s)")
    parser.add_argument("--path-steps", type=int, default=d.path_steps,
                        help="points heard along each segment of the path term (default: %(default)s)")
    parser.add_argument("--path-reach", type=float, default=d.path_reach,
                        help="each segment of the path term runs at most this share of the way from a random point to "
                        "another (default: %(default)s)")
    parser.add_argument("--path-ends", choices=("square", "presets"), default=d.path_ends,
                        help="the path term's segments run between random points of the square, or from each training "
                        "preset's place towards another preset's (default: %(default)s)")
    parser.add_argument("--ratings", default="",
                        help="rated training presets (python -m timbrespace.evaluate.rate_presets; "
                        f"{RATINGS} is the shipped set) for the sound index that places presets where the map sounds "
                        "like them (default: none, presets placed by the encoder)")
    parser.add_argument("--index-grid", type=int, default=d.index_grid,
                        help="the sound index's grid per side (0: no index, presets placed by the encoder; default: "
                        "%(default)s)")
    parser.add_argument("--index-anchor", type=float, default=d.index_anchor,
                        help="weight of nearness to the encoder's place against the predicted qualities' mismatch when "
                        "the sound index places a preset (0: by ear alone; default: %(default)s)")
    parser.add_argument("--lattice-ratings", default="",
                        help="rated lattice points of this map (python -m timbrespace.evaluate.rate_lattice; "
                        f"{LATTICE_RATINGS} is the shipped map's): the sound index uses their real qualities and "
                        "its rating head learns from them (default: none, predicted everywhere)")
    parser.add_argument("--hearing-cache", help="an .npz that keeps the hearing renders between runs")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
