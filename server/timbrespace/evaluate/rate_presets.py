"""Rate training presets as Table I rates them, for the patch map's rating head.

``python -m timbrespace.evaluate.rate_presets --out models/patch-vae/ratings.json`` plays a seeded
draw of the *training* split's presets (the split ``timbrespace train patch-vae`` makes with the
same seed and validation fraction; validation presets are never rated here) through amSynth (C4,
4 s, RMS-normalised, as ``timbrespace eval patch-vae``) and rates them with the AudioCommons timbral
models.  Training reads the file (``--ratings``) instead of rating: a rating costs seconds.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from timbrespace.evaluate.patch_map import Settings
from timbrespace.evaluate.patch_sound import C4
from timbrespace.evaluate.timbral import QUALITIES
from timbrespace.models.patch_ratings import FORMAT

DURATION = Settings.duration  # seconds of C4, as the eval plays


def rate(banks: Sequence[str], count: int, seed: int, val_fraction: float, log: bool = True) -> dict[str, object]:
    """The ratings document for ``count`` training presets drawn with ``seed`` (the split's own seed)."""
    from timbrespace.evaluate.patch_sound import Listener
    from timbrespace.models.train_patch_vae import _split
    from timbrespace.patch.library import PresetLibrary

    library = PresetLibrary(banks)
    train, _ = _split(library.factory_count, val_fraction, seed)
    pick = np.random.default_rng(seed + 1).permutation(train)[:count]
    values = library.values()
    listener = Listener(DURATION)
    presets, silent = [], []
    for k, i in enumerate(pick):
        heard = listener.hear(values[i])
        name = library.qualified_name(int(i))
        if heard is None:
            silent.append(name)
        else:
            presets.append({"name": name, "ratings": [round(float(v), 4) for v in heard.ratings]})
        if log and (k + 1) % 25 == 0:
            print(f"rated {k + 1} of {len(pick)}", file=sys.stderr)
    return {"format": FORMAT, "qualities": list(QUALITIES), "banks": list(banks), "seed": seed,
            "val_fraction": val_fraction, "note": C4, "seconds": DURATION, "presets": presets, "silent": silent}


def main(argv: Sequence[str] | None = None) -> int:
    """Rate and write the file; errors to stderr with exit status 2."""
    from timbrespace.evaluate import timbral
    from timbrespace.fidelity import reference
    from timbrespace.fsutil import atomic_write_text
    from timbrespace.models.train_patch_vae_options import DEFAULT_FACTORY_DIRS, TrainConfig

    p = argparse.ArgumentParser(prog="python -m timbrespace.evaluate.rate_presets", description=__doc__)
    p.add_argument("--out", type=Path, required=True, help="the ratings file to write (JSON)")
    p.add_argument("--count", type=int, default=400, help="training presets to rate (default: %(default)s)")
    p.add_argument("--banks", nargs="+", default=list(DEFAULT_FACTORY_DIRS), help="factory bank directories")
    p.add_argument("--seed", type=int, default=TrainConfig.seed, help="the training run's seed (its split)")
    p.add_argument("--val-fraction", type=float, default=TrainConfig.val_fraction)
    a = p.parse_args(argv)
    if a.count < 1:
        print(f"--count {a.count}: expected at least 1", file=sys.stderr)
        return 2
    if not 0.0 < a.val_fraction < 1.0:
        print(f"--val-fraction {a.val_fraction}: expected a number between 0 and 1", file=sys.stderr)
        return 2
    if a.out.is_dir():
        print(f"--out {a.out}: is a folder; expected a file path", file=sys.stderr)
        return 2
    if not reference.available():
        print(f"amSynth's DSSI plugin {reference.PLUGIN} is not installed (apt-get install amsynth)", file=sys.stderr)
        return 2
    if not timbral.available():
        print("the AudioCommons timbral models are not installed: pip install --no-deps timbral_models==0.4.0",
              file=sys.stderr)
        return 2
    doc = rate(a.banks, a.count, a.seed, a.val_fraction)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(a.out, json.dumps(doc, indent=1) + "\n")
    print(f"wrote {a.out}: {len(doc['presets'])} presets rated")  # type: ignore[arg-type]
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
