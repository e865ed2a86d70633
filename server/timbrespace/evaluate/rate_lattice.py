"""Rate the patch map's own lattice points as Table I rates presets, for the sound index.

``python -m timbrespace.evaluate.rate_lattice --out models/patch-vae/lattice-ratings.json --count 2048``
decodes the checkpoint's sound-index lattice, takes its first ``count`` points coarse to fine
(:func:`timbrespace.models.patch_lattice_ratings.order`), plays each through amSynth (C4, 4 s,
RMS-normalised, as ``timbrespace eval patch-vae``) and rates it with the AudioCommons timbral
models.  Training reads the file (``--lattice-ratings``): where a lattice point decodes to a patch
the file rated, the index uses its real qualities, and the rating head learns from it too.
``--extend`` keeps the ratings the file already holds for patches this lattice still decodes, so a
larger ``--count`` adds to the file rather than redoing it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from timbrespace.evaluate.patch_map import Settings
from timbrespace.evaluate.patch_sound import C4
from timbrespace.evaluate.rate_presets import problem, write
from timbrespace.evaluate.timbral import QUALITIES
from timbrespace.models.patch_lattice_ratings import FORMAT, LatticeRatings, lattice_keys, load, order
from timbrespace.models.patch_ratings import RatingsError
from timbrespace.models.patch_space import PatchSpace

DURATION = Settings.duration  # seconds of C4, as the eval plays


def rate(space: PatchSpace, count: int, known: LatticeRatings | None = None, log: bool = True) -> dict[str, object]:
    """The lattice ratings document for the first ``count`` points of ``space``'s sound-index lattice;
    patches ``known`` rated keep what an earlier run gave them."""
    from timbrespace.evaluate.patch_sound import Listener

    if space.index is None:
        raise RatingsError("the checkpoint has no sound index, so no lattice to rate (train it with --ratings)")
    grid = round(len(space.index.points) ** 0.5)
    pick = order(grid)[:count]
    values = space.decode_latent(space.index.points[pick])
    keys = lattice_keys(values)
    listener = Listener(DURATION)
    rated: dict[str, list[float]] = {}  # two cells may decode alike: one entry serves both
    silent: set[str] = set()
    for k, (key, v) in enumerate(zip(keys, values, strict=True)):
        if known is not None and key in known.by_key:
            stored = known.by_key[key]
            ratings = None if stored is None else [float(x) for x in stored]
        else:
            heard = listener.hear(v)
            ratings = None if heard is None else [round(float(x), 4) for x in heard.ratings]
        if ratings is None:
            silent.add(key)
        else:
            rated.setdefault(key, ratings)
        if log and (k + 1) % 50 == 0:
            print(f"rated {k + 1} of {len(pick)}", file=sys.stderr)
    if log:
        print(f"rated {listener.renders} points; the other {len(pick) - listener.renders} were in the file or decode "
              "as another point does", file=sys.stderr)
    return {"format": FORMAT, "qualities": list(QUALITIES), "model_sha256": space.sha256, "grid": grid,
            "count": len(pick), "note": C4, "seconds": DURATION,
            "points": [{"key": key, "ratings": r} for key, r in rated.items()], "silent": sorted(silent)}


def main(argv: Sequence[str] | None = None) -> int:
    """Rate and write the file; errors to stderr with exit status 2."""
    from timbrespace.models.checkpoint import CheckpointError
    from timbrespace.models.patch_space import default_checkpoint

    p = argparse.ArgumentParser(prog="python -m timbrespace.evaluate.rate_lattice", description=__doc__)
    p.add_argument("--out", type=Path, required=True, help="the lattice ratings file to write (JSON)")
    p.add_argument("--model", type=Path, default=default_checkpoint(), help="the checkpoint (default: the shipped one)")
    p.add_argument("--count", type=int, default=1024, help="lattice points to rate, coarse to fine (default: "
                   "%(default)s)")
    p.add_argument("--extend", action="store_true",
                   help="keep the ratings --out already holds for patches this lattice decodes, and rate only the rest")
    a = p.parse_args(argv)
    wrong = problem(a.count, a.out)
    if wrong is not None:
        print(wrong, file=sys.stderr)
        return 2
    try:
        space = PatchSpace.load(a.model, device="cpu")
        known = load(a.out) if a.extend and a.out.exists() else None
        doc = rate(space, a.count, known)
    except (CheckpointError, RatingsError) as e:
        print(f"{e}", file=sys.stderr)
        return 2
    write(a.out, doc)
    print(f"wrote {a.out}: {len(doc['points'])} lattice patches rated, {len(doc['silent'])} silent")  # type: ignore[arg-type]
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
