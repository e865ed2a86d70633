"""The ``timbrespace`` command line."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import timbrespace
from timbrespace.cli_args import parser as _parser

os.environ.setdefault("PYO_GUI_WX", "0")


class CliError(Exception):
    """An error to print on stderr with a non-zero exit."""


def _config(path: Path | None) -> timbrespace.config.Config:
    from timbrespace import config

    try:
        return config.load(path)
    except config.ConfigError as e:
        raise CliError(str(e)) from None


def _logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def _check_writable(path: Path, option: str) -> None:
    """CliError naming ``path`` unless a file can be written there.

    Checked before anything starts: the audio process opens the file itself, and pyo only
    prints a line when it cannot, then records nothing while the server runs as if all were well.
    """
    if path.is_dir():
        raise CliError(f"{option} {path}: is a folder; expected a file path such as {path / 'take.wav'}")
    parent = path.parent
    if not parent.is_dir():
        raise CliError(f"{option} {path}: the folder {parent} does not exist; create it or choose another path")
    if not os.access(parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise CliError(f"{option} {path}: not writable (permission denied); choose another path")


def _serve(a: argparse.Namespace) -> int:
    from timbrespace.server import StartupError, serve

    cfg = _config(a.config)
    if a.host is not None:
        cfg.network.host = a.host
    if a.port is not None:
        if not 0 <= a.port <= 65535:
            raise CliError(f"--port {a.port} is out of range [0, 65535]")
        cfg.network.port = a.port
    if a.audio is not None:
        cfg.audio.backend = a.audio
    if a.no_zeroconf:
        cfg.network.zeroconf = False
    if a.record is not None:
        _check_writable(a.record, "--record")
    if a.input is not None:
        cfg.input.file = str(a.input.resolve())
    if a.input_device:
        if a.input is not None:
            raise CliError("--input-device and --input: the live input is the device or a file, not both")
        cfg.input.device, cfg.input.file = True, ""
    if a.input_loop:
        if not cfg.input.file:
            raise CliError("--input-loop: give the file with --input FILE.wav (or config input.file)")
        cfg.input.loop = True
    _logging(cfg.log_level)
    try:
        return asyncio.run(serve(cfg, record=a.record, fresh=a.fresh, qr=_print_qr if a.qr else None))
    except StartupError as e:
        raise CliError(str(e)) from None


def _print_qr(url: str) -> None:
    from timbrespace.web.url import qr_text

    print(f"scan to play: {url}\n{qr_text(url)}", flush=True)


def _render(a: argparse.Namespace) -> int:
    from timbrespace.engines.registry import EngineLoadError
    from timbrespace.render import ScoreError, load_score, render_score, write_wav

    cfg = _config(a.config)
    _logging(cfg.log_level)
    try:
        score = load_score(a.score)
    except ScoreError as e:
        raise CliError(str(e)) from None
    try:
        result = render_score(cfg, score)
    except EngineLoadError as e:
        raise CliError(str(e)) from None
    write_wav(a.out, result.audio, result.sample_rate)
    for line in result.failures:
        print(line, file=sys.stderr)
    print(f"wrote {a.out} ({result.audio.shape[0] / result.sample_rate:.2f} s, {len(score)} events)")
    return 0


def _train(a: argparse.Namespace) -> int:
    # main() hands `train MODEL ...` over before parsing (_OWN_OPTIONS): options came first here.
    raise CliError(f"write the options after the model: timbrespace train {a.model} [options]")


#: ``train`` models whose options are their training module's own (``timbrespace train timbre --help``).
_OWN_OPTIONS = {"patch-vae": "timbrespace.models.train_patch_vae", "timbre": "timbrespace.models.train_timbre",
                "timbre-map": "timbrespace.models.train_timbre_map"}


def _train_own(model: str, argv: Sequence[str]) -> int:
    """``train MODEL ...``: the options and behaviour of ``python -m`` its training module."""
    import importlib

    from timbrespace.models.checkpoint import CheckpointError
    from timbrespace.models.patch_hearing import HearingError

    try:
        main: Callable[[Sequence[str]], int] = importlib.import_module(_OWN_OPTIONS[model]).main
        return main(argv)
    except (ValueError, OSError, CheckpointError, HearingError) as e:
        raise CliError(str(e)) from None


def _eval(a: argparse.Namespace) -> int:
    if a.action == "patch-vae":
        return _eval_patch(a)
    from timbrespace.evaluate import timbre, unseen
    from timbrespace.fsutil import atomic_write_text
    from timbrespace.models.checkpoint import CheckpointError
    from timbrespace.models.timbre_features import load_notes

    _logging("warning")
    models = a.model or [p for p in timbre.SHIPPED if p.is_file()]
    if not models:
        raise CliError(f"no model: give --model P (none of {', '.join(map(str, timbre.SHIPPED))} exists)")
    for m in models:
        if not m.is_file():
            raise CliError(f"--model {m}: no such file; expected a timbre-gmvae checkpoint (.pt)")
    out_dir = Path("var/eval") if a.quick else Path("docs")
    json_path = a.out_json or out_dir / ("timbre-quick.json" if a.quick else "timbre-eval.json")
    md_path = a.markdown or out_dir / ("timbre-quick.md" if a.quick else "timbre.md")
    plots = a.plots or out_dir
    try:
        notes = load_notes(a.manifest, cache_dir=a.cache)
        sets = [(unseen.set_name(p), load_notes(p, cache_dir=a.cache)) for p in a.unseen]
        settings = timbre.Settings.make(a.quick, a.seed)
        cnn_cache = a.cache.parent / "timbre-eval"  # next to the feature cache
        result = timbre.evaluate(models, notes, settings, plots=plots, cnn_cache=cnn_cache,
                                 log=lambda line: print(line, file=sys.stderr))
        if sets:
            started = time.monotonic() - result["seconds"]
            clf, _ = timbre.judge(notes, settings, cnn_cache)  # the one evaluate trained (cached)
            unseen.add_unseen(result, models, sets, notes, clf, settings,
                              1 if a.quick else unseen.PER_INSTRUMENT)
            result["seconds"] = time.monotonic() - started  # the report's time covers the unseen sets too
    except FileNotFoundError as e:
        raise CliError(f"{e.filename}: no such file (build the notes with `timbrespace data soundfont`)") from None
    except (ValueError, CheckpointError) as e:
        raise CliError(str(e)) from None
    print(timbre.format_table(result))
    for label, m in result["models"].items():
        for name, figures in m.get("unseen", {}).items():
            print(f"{label} on unseen {name}: accuracy {figures['accuracy']:.3f}, "
                  f"macro F1 {figures['macro_f1']:.3f}")
    atomic_write_text(json_path, timbre.to_json(result))
    atomic_write_text(md_path, timbre.markdown(result, md_path.parent) + "\n".join(unseen.section(result)))
    print(f"wrote {json_path}, {md_path} and plots in {plots}")
    return 0


def _eval_patch(a: argparse.Namespace) -> int:
    from timbrespace.evaluate import patch_command

    _logging("warning")
    try:
        return patch_command.run(a)
    except patch_command.UsageError as e:
        raise CliError(str(e)) from None


def _transfer(a: argparse.Namespace) -> int:
    from timbrespace.models.checkpoint import CheckpointError
    from timbrespace.models.timbre_space import TimbreSpace
    from timbrespace.transfer import TransferError, transfer_file

    # Checked before the model loads. Past 1 the code leaves the region the model was trained on
    # (the same range /alpha declares), and the sound is no longer the target instrument's.
    if not math.isfinite(a.alpha):
        raise CliError(f"--alpha {a.alpha} is not a finite number; expected a number in [0, 1]")
    if not 0.0 <= a.alpha <= 1.0:
        raise CliError(f"--alpha {a.alpha:g} is out of range [0, 1] (0: the note as it is, 1: the whole step "
                       "to the target)")
    if a.phrase:
        return _transfer_phrase(a)
    path = a.model or TimbreSpace.default_path()
    if not Path(path).is_file():
        raise CliError(f"model {path}: no such file; expected a timbre-gmvae checkpoint (train one with "
                       "`timbrespace train timbre`)")
    try:
        space = TimbreSpace.load(path, device="cpu")
    except (CheckpointError, OSError, ValueError) as e:
        raise CliError(f"cannot load model {path}: {e}") from None

    def ref(v: str) -> int | str:
        return int(v) if v.strip().isdigit() else v  # an index, else a name

    try:
        r = transfer_file(space, a.input, a.out, ref(a.target), source=None if a.source is None else ref(a.source),
                          alpha=a.alpha, pitch=a.pitch)
    except TransferError as e:
        raise CliError(str(e)) from None
    except OSError as e:
        raise CliError(f"cannot write {a.out}: {e.strerror or e}; expected a writable file path") from None
    print("\n".join(r.lines()))
    print(f"wrote {a.out}")
    return 0


def _transfer_phrase(a: argparse.Namespace) -> int:
    from timbrespace.transfer import TransferError, transfer_phrase

    for given, option in ((a.source, "--source"), (a.pitch, "--pitch")):
        if given is not None:
            raise CliError(f"{option} is a single note's: with --phrase the trackers follow the pitch and the input's "
                           "own timbre is the source")
    cfg = _config(a.config)
    if a.model is not None:
        cfg.timbre.model = a.model
    cfg.state.persist = False
    _logging("warning")
    target = int(a.target) if a.target.strip().isdigit() else a.target
    try:
        seconds, rate = transfer_phrase(cfg, a.input, a.out, target, alpha=a.alpha)
    except TransferError as e:
        raise CliError(str(e)) from None
    except OSError as e:
        raise CliError(f"cannot write {a.out}: {e.strerror or e}; expected a writable file path") from None
    print(f"wrote {a.out} ({seconds:.2f} s at {rate} Hz, target {a.target}, alpha {a.alpha:g})")
    return 0


def _map(a: argparse.Namespace) -> int:
    from timbrespace.mapping import draw_map

    cfg = _config(a.config)
    _logging(cfg.log_level)
    draw_map(cfg, a.out, grid=a.grid)
    print(f"wrote {a.out}")
    return 0


def _bench(a: argparse.Namespace) -> int:
    from timbrespace.bench import run_bench

    cfg = _config(a.config)
    _logging("warning")
    run_bench(cfg, json_path=a.json, markdown_path=a.markdown, quick=a.quick)
    return 0


def _compare(a: argparse.Namespace) -> int:

    import numpy as np

    from timbrespace.fidelity import compare, reference
    from timbrespace.fsutil import atomic_write_text
    from timbrespace.patch.library import PresetLibrary

    cfg = _config(a.config)
    _logging("warning")
    if not reference.available():
        raise CliError(f"amSynth's DSSI plugin {reference.PLUGIN} is not installed (apt-get install amsynth)")
    if not a.preset and not a.all:
        raise CliError("give --preset P (repeatable) or --all")
    lib = PresetLibrary([Path(b) for b in cfg.patch.banks])
    report: dict[str, object] = {}
    for key in a.preset:
        try:
            i = lib.resolve(int(key) if key.isdigit() else key)
        except (KeyError, IndexError, ValueError) as e:
            raise CliError(str(e)) from None
        result = compare.compare(lib[i].values, lib.qualified_name(i))
        print("\n".join(result.lines()))
        report[result.name] = result.__dict__
    if a.all:
        n = lib.factory_count
        chosen = np.arange(n)
        if a.limit is not None and a.limit < n:
            chosen = np.sort(np.random.default_rng(a.seed).choice(n, a.limit, replace=False))
        ident = compare.identify(lib.values()[chosen], [lib.qualified_name(int(i)) for i in chosen], progress=True)
        summary = ident.summary()
        print(f"{summary['presets']} presets in {summary['seconds']:.0f} s: {100 * summary['identified']:.1f}% "
              f"identified ({100 * summary['identified_distinct']:.1f}% of the {summary['presets'] - summary['twins']}"
              f" amSynth renders distinctly; {100 * summary['identified_finite']:.1f}% of those with no NaN render)"
              f"; own median {summary['own_median_db']:.2f} dB, "
              f"between median {summary['between_median_db']:.2f} dB (ratio {summary['ratio']:.3f})")
        report["identification"] = summary
        if a.plot is not None:
            compare.plot(ident, a.plot)
            print(f"wrote {a.plot}")
    if a.out_json is not None:
        atomic_write_text(a.out_json, json.dumps(report, indent=2, default=float) + "\n")
        print(f"wrote {a.out_json}")
    return 0


def _data(a: argparse.Namespace) -> int:
    from tqdm import tqdm

    from timbrespace.data import folder, mix, soundfont
    from timbrespace.data.soundfont import DataError
    from timbrespace.data.wav import dbfs

    cfg = _config(a.config)
    _logging("warning")
    try:
        if a.action == "soundfont":
            r = soundfont.build(
                a.out or cfg.data.data_dir, a.soundfont or cfg.data.soundfont, seed=a.seed, force=a.force,
                shifted=a.shifted, max_shift=a.max_shift,
                progress=lambda notes, n: tqdm(notes, total=n, unit="note", file=sys.stderr, dynamic_ncols=True),
            )
            print(f"{len(r.manifest.notes)} notes ({r.rendered} rendered, {r.unchanged} unchanged), "
                  f"{len(r.manifest.dropped)} dropped, {r.total_bytes / 1e6:.1f} MB, peak {dbfs(r.peak):+.2f} dBFS, "
                  f"{r.seconds:.1f} s; wrote {r.path}")
        elif a.action == "mix":
            m = mix.build(a.sources, a.out, copies=a.copies, seed=a.seed,
                          progress=lambda notes, n: tqdm(notes, total=n, unit="note", file=sys.stderr,
                                                         dynamic_ncols=True))
            print(f"{len(m.manifest.notes)} notes from {len(m.manifest.sources)} sources ({m.linked} linked, "
                  f"{m.augmented} augmented), {m.seconds:.1f} s; wrote {m.path}")
        else:
            out = a.out or cfg.data.data_dir.parent / a.dir.resolve().name
            f = folder.build(a.dir, out, seed=a.seed)
            print(f"{len(f.manifest.notes)} notes, {len(f.manifest.dropped)} dropped, gain {f.gain:.3f}, "
                  f"peak {dbfs(f.peak):+.2f} dBFS, {f.seconds:.1f} s; wrote {f.path}")
    except DataError as e:
        raise CliError(str(e)) from None
    return 0


def _send(a: argparse.Namespace) -> int:
    from timbrespace.client import list_servers, send_and_print

    if a.list:
        if a.address is not None:
            raise CliError("--list sends nothing: give it alone, or an ADDRESS without --list")
        return list_servers()
    if a.address is None:
        raise CliError("give an ADDRESS (e.g. /status), or --list")
    return send_and_print(a.address, a.args, host=a.host, port=a.port, tcp=a.tcp, wait=a.wait)


_COMMANDS = {
    "serve": _serve,
    "render": _render,
    "train": _train,
    "map": _map,
    "bench": _bench,
    "compare": _compare,
    "send": _send,
    "data": _data,
    "eval": _eval,
    "transfer": _transfer,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["train"] and argv[1:2] and argv[1] in _OWN_OPTIONS:  # see _OWN_OPTIONS
        try:
            return _train_own(argv[1], argv[2:])
        except CliError as e:
            print(f"timbrespace train: {e}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            return 130
    args = _parser().parse_args(argv)
    try:
        status = _COMMANDS[args.command](args)
        sys.stdout.flush()  # here, so a closed pipe is caught below and not at exit
        return status
    except BrokenPipeError:
        # The reader went away (`| head`): not an error of ours, and nothing more to say. Python
        # flushes stdout again at exit, so point it at /dev/null first.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except CliError as e:
        print(f"timbrespace {args.command}: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
