"""``timbrespace eval patch-vae``: its options, checked before anything heavy starts, and the run.

Kept apart from cli.py (which only hands over) so the command line stays one idea per module; this
module imports nothing heavy at the top, because the parser is built on every ``timbrespace`` call.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DESCRIPTION = ("Play validation presets and their reconstructions through amSynth, rate them with the "
               "AudioCommons timbral models (Table I), map each quality over the unit square (Figure 8), "
               "compare paths through the map with linear morphs (SPINVAE), and measure how much of the whole "
               "square holds a note and sounds like some preset (coverage).")


class UsageError(Exception):
    """A bad option or a missing prerequisite: printed on stderr, exit status 2."""


def add_arguments(ep: argparse.ArgumentParser) -> None:
    """The options of ``timbrespace eval patch-vae``."""
    ep.add_argument("--model", type=Path, metavar="P", help="patch-vae checkpoint (default: the shipped one)")
    ep.add_argument("--json", type=Path, metavar="F",
                    help="figures as JSON (default: docs/patch-map.json; --quick: var/eval/patch-map-quick.json)")
    ep.add_argument("--markdown", type=Path, metavar="F",
                    help="the report (default: docs/patch-map.md; --quick: var/eval/patch-map-quick.md)")
    ep.add_argument("--plots", type=Path, metavar="DIR", help="PNG folder (default: docs; --quick: var/eval)")
    ep.add_argument("--quick", action="store_true", help="three presets, a 2x2 grid, one pair (CI; under a minute)")
    ep.add_argument("--seed", type=int, default=0, help="which presets, baseline partners and pairs (default: 0)")
    ep.add_argument("--presets", type=int, metavar="N", help="validation presets for Table I (default: 64; 0: all)")
    ep.add_argument("--grid", type=int, metavar="N", help="Figure 8's grid per side (default: 8)")
    ep.add_argument("--pairs", type=int, metavar="N", help="preset pairs for the paths (default: 40)")
    ep.add_argument("--coverage-grid", type=int, metavar="N",
                    help="cells per side of the coverage grid over the whole square (default: 24; --quick: 4)")
    ep.add_argument("--card", action="store_true",
                    help="also write Table I and the path shares into MODEL_CARD.md beside the model (dated)")


def _sizes(a: argparse.Namespace) -> dict[str, int]:
    sizes = {k: v for k, v in (("presets", a.presets), ("grid", a.grid), ("pairs", a.pairs),
                               ("coverage-grid", a.coverage_grid)) if v is not None}
    for option, value in sizes.items():
        least = 0 if option == "presets" else 1
        if value < least:
            raise UsageError(f"--{option} {value}: expected an integer of at least {least}")
    return sizes


def run(a: argparse.Namespace) -> int:
    """Check the options, measure, print the table, write the report, figures and (``--card``) the card."""
    import dataclasses
    import datetime

    from timbrespace.evaluate import patch_map, patch_report, timbral
    from timbrespace.fidelity import reference
    from timbrespace.fsutil import atomic_write_text
    from timbrespace.models.checkpoint import CheckpointError
    from timbrespace.models.patch_space import PatchSpace

    if a.seed < 0:
        raise UsageError(f"--seed {a.seed}: expected a non-negative integer")
    sizes = _sizes(a)
    model = a.model or patch_map.default_model()
    if not model.is_file():
        raise UsageError(f"model {model}: no such file; expected a patch-vae checkpoint (.pt)")
    out_dir = Path("var/eval") if a.quick else Path("docs")
    json_path = a.json or out_dir / ("patch-map-quick.json" if a.quick else "patch-map.json")
    md_path = a.markdown or out_dir / ("patch-map-quick.md" if a.quick else "patch-map.md")
    plots = a.plots or out_dir
    for path, option in ((json_path, "--json"), (md_path, "--markdown")):
        if path.is_dir():
            raise UsageError(f"{option} {path}: is a folder; expected a file path")
    if plots.exists() and not plots.is_dir():
        raise UsageError(f"--plots {plots}: is a file; expected a folder")
    card = model.parent / "MODEL_CARD.md"
    if a.card and (a.quick or sizes):
        raise UsageError("--card records the default full run in the model card; drop --quick, --presets, --grid, "
                         "--pairs and --coverage-grid (or --card)")
    if a.card and not card.is_file():
        raise UsageError(f"--card: {card} does not exist; expected the model card beside the checkpoint")
    if not reference.available():
        raise UsageError(f"amSynth's DSSI plugin {reference.PLUGIN} is not installed (apt-get install amsynth)")
    if not timbral.available():
        raise UsageError("the AudioCommons timbral models are not installed: pip install -e '.[eval]' && "
                         "pip install --no-deps timbral_models==0.4.0")
    try:
        space = PatchSpace.load(model, device="cpu", num_threads=1)
        base = patch_map.Settings.make(a.quick, a.seed)
        presets = base.presets if a.presets is None else (a.presets or None)  # 0: every validation preset
        settings = dataclasses.replace(base, presets=presets, grid=sizes.get("grid", base.grid),
                                       pairs=sizes.get("pairs", base.pairs),
                                       coverage_grid=sizes.get("coverage-grid", base.coverage_grid))
        result = patch_map.evaluate(space, settings, log=lambda line: print(line, file=sys.stderr))
    except (CheckpointError, ValueError, OSError, reference.ReferenceUnavailable, reference.WorkerError) as e:
        raise UsageError(str(e)) from None
    print(patch_report.format_table(result))
    for path in (json_path, md_path):
        path.parent.mkdir(parents=True, exist_ok=True)
    patch_report.write_plots(plots, result)
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    atomic_write_text(json_path, patch_report.to_json(result))
    report = patch_report.markdown(result, md_path.parent, plots, date)
    if md_path.is_file():
        report = patch_report.keep_hand_written(md_path.read_text(), report)
    atomic_write_text(md_path, report)
    print(f"wrote {json_path}, {md_path} and plots in {plots}")
    if a.card:
        atomic_write_text(card, patch_report.update_card(card, patch_report.card_section(result, date)))
        print(f"updated {card}")
    return 0
