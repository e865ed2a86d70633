"""Rate training presets as Table I rates them, for the patch map's rating head.

``python -m timbrespace.evaluate.rate_presets --out models/patch-vae/ratings.json`` plays a seeded
draw of the *training* split's presets (the split ``timbrespace train patch-vae`` makes with the
same seed and validation fraction; validation presets are never rated here) through amSynth (C4,
4 s, RMS-normalised, as ``timbrespace eval patch-vae``) and rates them with the AudioCommons timbral
models.  Training reads the file (``--ratings``) instead of rating: a rating costs seconds.
``--extend`` keeps the ratings an earlier run wrote to the same file (same banks, seed and split)
and rates only the presets it lacks, so a larger ``--count`` adds to a file rather than redoing it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from timbrespace.evaluate.patch_map import Settings
from timbrespace.evaluate.patch_sound import C4, cannot_rate
from timbrespace.evaluate.timbral import QUALITIES
from timbrespace.models.patch_ratings import FORMAT, RatingsError, load
from timbrespace.patch.library import PresetLibrary

DURATION = Settings.duration  # seconds of C4, as the eval plays


def draw(library: PresetLibrary, count: int, seed: int, val_fraction: float) -> npt.NDArray[np.intp]:
    """The library indices of the first ``count`` training presets in the order ``seed`` rates them (a
    larger count draws the same presets first)."""
    from timbrespace.models.train_patch_vae import _split

    train, _ = _split(library.factory_count, val_fraction, seed)
    pick: npt.NDArray[np.intp] = np.random.default_rng(seed + 1).permutation(train)[:count]
    return pick


def rate(banks: Sequence[str], count: int, seed: int, val_fraction: float, log: bool = True,
         known: dict[str, list[float] | None] | None = None) -> dict[str, object]:
    """The ratings document for ``count`` training presets drawn with ``seed`` (the split's own seed);
    presets in ``known`` (name to ratings, None for silent) keep what an earlier run gave them."""
    from timbrespace.evaluate.patch_sound import Listener

    library = PresetLibrary(banks)
    pick = draw(library, count, seed, val_fraction)
    values = library.values()
    listener = Listener(DURATION)
    presets, silent = [], []
    known = known or {}
    for k, i in enumerate(pick):
        name = library.qualified_name(int(i))
        if name in known:
            ratings = known[name]
        else:
            heard = listener.hear(values[i])
            ratings = None if heard is None else [round(float(v), 4) for v in heard.ratings]
        if ratings is None:
            silent.append(name)
        else:
            presets.append({"name": name, "ratings": ratings})
        if log and (k + 1) % 25 == 0:
            print(f"rated {k + 1} of {len(pick)}", file=sys.stderr)
    if log:
        print(f"rated {listener.renders} presets; {len(pick) - listener.renders} kept from the file", file=sys.stderr)
    return {"format": FORMAT, "qualities": list(QUALITIES), "banks": list(banks), "seed": seed,
            "val_fraction": val_fraction, "note": C4, "seconds": DURATION, "presets": presets, "silent": silent}


def _known(path: Path, banks: Sequence[str], seed: int, val_fraction: float) -> dict[str, list[float] | None]:
    """What an earlier run rated in ``path``, if it rated the same draw; RatingsError names what differs."""
    ratings = load(path)
    doc = json.loads(path.read_text())
    wanted = {"banks": list(banks), "seed": seed, "val_fraction": val_fraction, "note": C4, "seconds": DURATION}
    for key, value in wanted.items():
        if doc.get(key) != value:
            raise RatingsError(f"{path}: {key} is {doc.get(key)!r}; this run's is {value!r}, so its ratings are "
                               "of another draw or another note (write another file, or leave out --extend)")
    known: dict[str, list[float] | None] = {n: [float(v) for v in r] for n, r in zip(ratings.names, ratings.values,
                                                                                      strict=True)}
    known.update({n: None for n in doc.get("silent", []) if isinstance(n, str)})
    return known


def problem(count: int, out: Path) -> str | None:
    """What stops a rating run of ``count`` patches written to ``out`` (this one or rate_lattice's), or None."""
    if count < 1:
        return f"--count {count}: expected at least 1"
    if out.is_dir():
        return f"--out {out}: is a folder; expected a file path"
    return cannot_rate()


def write(out: Path, doc: dict[str, object]) -> None:
    """Write a ratings document whole or not at all (its folder made first)."""
    from timbrespace.fsutil import atomic_write_text

    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(doc, indent=1) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Rate and write the file; errors to stderr with exit status 2."""
    from timbrespace.models.train_patch_vae_options import DEFAULT_FACTORY_DIRS, TrainConfig

    p = argparse.ArgumentParser(prog="python -m timbrespace.evaluate.rate_presets", description=__doc__)
    p.add_argument("--out", type=Path, required=True, help="the ratings file to write (JSON)")
    p.add_argument("--count", type=int, default=400, help="training presets to rate (default: %(default)s)")
    p.add_argument("--banks", nargs="+", default=list(DEFAULT_FACTORY_DIRS), help="factory bank directories")
    p.add_argument("--seed", type=int, default=TrainConfig.seed, help="the training run's seed (its split)")
    p.add_argument("--val-fraction", type=float, default=TrainConfig.val_fraction)
    p.add_argument("--extend", action="store_true",
                   help="keep the ratings --out already holds (same banks, seed and split) and rate only the rest")
    a = p.parse_args(argv)
    wrong = problem(a.count, a.out)
    if wrong is None and not 0.0 < a.val_fraction < 1.0:
        wrong = f"--val-fraction {a.val_fraction}: expected a number between 0 and 1"
    if wrong is not None:
        print(wrong, file=sys.stderr)
        return 2
    known = None
    if a.extend and a.out.exists():
        try:
            known = _known(a.out, a.banks, a.seed, a.val_fraction)
        except RatingsError as e:
            print(f"--extend: {e}", file=sys.stderr)
            return 2
    doc = rate(a.banks, a.count, a.seed, a.val_fraction, known=known)
    write(a.out, doc)
    print(f"wrote {a.out}: {len(doc['presets'])} presets rated")  # type: ignore[arg-type]
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
