"""The ``timbrespace`` command line's arguments: every subcommand and its options."""

from __future__ import annotations

import argparse
from pathlib import Path

import timbrespace


def parser() -> argparse.ArgumentParser:
    """Every subcommand and its options (the commands themselves are in :mod:`timbrespace.cli`)."""
    p = argparse.ArgumentParser(prog="timbrespace", description=timbrespace.__doc__)
    p.add_argument("--version", action="version", version=f"timbrespace {timbrespace.__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("serve", help="run the OSC sound server")
    s.add_argument("--config", type=Path, help="YAML config (default: config/default.yaml)")
    s.add_argument("--host", help="interface address to listen on")
    s.add_argument("--port", type=int, help="UDP and TCP port (0: any free port)")
    s.add_argument("--audio", choices=["auto", "jack", "portaudio", "null"], help="audio backend")
    s.add_argument("--record", type=Path, metavar="OUT.wav", help="record the output to a WAV file")
    s.add_argument("--input", type=Path, metavar="FILE.wav",
                   help="play a WAV file as the live input (/input 1 starts it; docs/live-transfer.md)")
    s.add_argument("--input-loop", action="store_true", help="with --input: play the file over and over")
    s.add_argument("--input-device", action="store_true",
                   help="the audio device's first input (JACK: timbrespace:input_1) as the live input")
    s.add_argument("--no-zeroconf", action="store_true", help="do not advertise on the network")
    s.add_argument("--qr", action="store_true",
                   help="print a QR code of the web page's URL (/play) once ready, for a phone to scan")
    s.add_argument("--fresh", action="store_true",
                   help="start from the config, not from the state saved at the last exit (it is saved again at exit)")

    r = sub.add_parser("render", help="render a score offline, deterministically")
    r.add_argument("score", type=Path, metavar="SCORE.yaml")
    r.add_argument("--out", type=Path, required=True, metavar="OUT.wav")
    r.add_argument("--config", type=Path)

    t = sub.add_parser("train", help="train a model (its options: `timbrespace train MODEL --help`)")
    t.add_argument("model", choices=["patch-vae", "timbre", "timbre-map"])
    t.add_argument("--out", type=Path, help="output folder (default: models/<model>)")
    t.add_argument("--epochs", type=int)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--config", type=Path)

    m = sub.add_parser("map", help="draw a model's 2-D map as a PNG")
    m.add_argument("model", choices=["patch-vae"])
    m.add_argument("--out", type=Path, required=True, metavar="map.png")
    m.add_argument("--grid", type=int, default=24, help="heat map resolution per side")
    m.add_argument("--config", type=Path)

    b = sub.add_parser("bench", help="measure throughput, latency, decode time and CPU")
    b.add_argument("--json", type=Path, help="write the figures as JSON here")
    b.add_argument("--markdown", type=Path, help="write a Markdown table here")
    b.add_argument("--quick", action="store_true", help="short runs (for CI)")
    b.add_argument("--config", type=Path)

    f = sub.add_parser("compare", help="measure the voice against amSynth itself (its DSSI plugin)")
    f.add_argument("--preset", action="append", default=[], metavar="P", help="a preset (index or name); repeatable")
    f.add_argument("--all", action="store_true", help="identification over the whole factory set")
    f.add_argument("--limit", type=int, help="with --all: only this many presets, drawn with --seed")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--out-json", type=Path, metavar="F", help="write the figures as JSON here")
    f.add_argument("--plot", type=Path, metavar="F", help="with --all: write the identification plot (PNG)")
    f.add_argument("--config", type=Path)

    d = sub.add_parser("data", help="build the timbre engine's training data")
    dsub = d.add_subparsers(dest="action", required=True, metavar="ACTION")
    ds = dsub.add_parser("soundfont", help="render labelled notes of 12 instruments from a GM SoundFont")
    ds.add_argument("--soundfont", type=Path, metavar="PATH",
                    help="a .sf2 or .sf3 SoundFont, or a TiMidity++ .cfg of GUS patches such as "
                         "/etc/timidity/freepats.cfg (default: data.soundfont)")
    ds.add_argument("--out", type=Path, metavar="DIR", help="output folder (default: data.data_dir)")
    ds.add_argument("--seed", type=int, default=0, help="seed of the train/valid split")
    ds.add_argument("--force", action="store_true", help="re-render every note, even unchanged ones")
    ds.add_argument("--shifted", type=int, default=0, metavar="N",
                    help="shifted copies of each training note: played from a training key up to --max-shift "
                         "semitones away and resampled to its pitch, as a sparsely sampled SoundFont does (default 0)")
    ds.add_argument("--max-shift", type=int, default=6, metavar="K", help="widest shift in semitones (default 6)")
    ds.add_argument("--config", type=Path)
    dm = dsub.add_parser("mix", help="one training set from several data folders, with augmented copies of "
                                     "its training notes (rooms, microphones, noise, band limits)")
    dm.add_argument("sources", type=Path, nargs="+", metavar="DIR", help="data folders (each with a manifest.json)")
    dm.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    dm.add_argument("--copies", type=int, default=2, help="augmented copies of each training note (default 2)")
    dm.add_argument("--seed", type=int, default=0, help="seed of the split and of the augmentations")
    dm.add_argument("--config", type=Path)
    df = dsub.add_parser("folder", help="import your own WAVs (DIR/labels.csv: file,instrument,pitch[,velocity])")
    df.add_argument("dir", type=Path, metavar="DIR")
    df.add_argument("--out", type=Path, metavar="DIR", help="output folder (default: var/data/<DIR's name>)")
    df.add_argument("--seed", type=int, default=0, help="seed of the train/valid split")
    df.add_argument("--config", type=Path)

    e = sub.add_parser("eval", help="measure a model against the paper's targets")
    esub = e.add_subparsers(dest="action", required=True, metavar="ACTION")
    et = esub.add_parser("timbre", help="timbre GMVAE: Table 1 probes, controllable synthesis, timbre transfer")
    et.add_argument("--model", type=Path, action="append", metavar="P",
                    help="a timbre-gmvae checkpoint; repeatable (default: the shipped ones that exist)")
    et.add_argument("--manifest", type=Path, default=Path("var/data/soundfont/manifest.json"), metavar="F",
                    help="the notes (their valid split is held out; default: %(default)s)")
    et.add_argument("--cache", type=Path, default=Path("var/cache/timbre-features"), metavar="DIR",
                    help="feature cache (default: %(default)s)")
    et.add_argument("--out-json", type=Path, metavar="F",
                    help="figures as JSON (default: docs/timbre-eval.json; --quick: var/eval/timbre-quick.json)")
    et.add_argument("--markdown", type=Path, metavar="F",
                    help="the report (default: docs/timbre.md; --quick: var/eval/timbre-quick.md)")
    et.add_argument("--plots", type=Path, metavar="DIR", help="PNG folder (default: docs; --quick: var/eval)")
    et.add_argument("--unseen", type=Path, action="append", default=[], metavar="F",
                    help="the manifest of a set no model was trained on (e.g. TimGM6mb rendered with `data "
                         "soundfont`); every note classified by the model's own posterior; repeatable")
    et.add_argument("--quick", action="store_true", help="a few notes per instrument (CI; well under a minute)")
    et.add_argument("--seed", type=int, default=0)
    from timbrespace.evaluate import patch_command

    patch_command.add_arguments(esub.add_parser(
        "patch-vae", help="patch VAE: Peachey et al.'s Table I and Figure 8, smooth paths",
        description=patch_command.DESCRIPTION))

    x = sub.add_parser("transfer", help="move a recorded note's timbre toward another instrument",
                       description="Encode the note's first 500 ms, move its timbre code by alpha (mu_target - "
                       "mu_source), decode over the note's length at velocity 100, write a 16-bit WAV.")
    x.add_argument("input", type=Path, metavar="IN.wav")
    x.add_argument("--target", required=True, metavar="I", help="target instrument (index or name)")
    x.add_argument("--source", metavar="I", help="source instrument (default: the model's guess)")
    x.add_argument("--alpha", type=float, default=1.0, metavar="A",
                   help="how far to move, in [0, 1]: 0 = none, 1 = by the whole source-to-target step (default: 1)")
    x.add_argument("--pitch", type=float, metavar="MIDI", help="the note's pitch (default: detected with CREPE)")
    x.add_argument("--phrase", action="store_true",
                   help="a whole phrase (notes, glides, vibrato): followed by the live input's trackers and decoder "
                   "(docs/live-transfer.md), written at the server's rate")
    x.add_argument("--config", type=Path, help="with --phrase: the config (audio.sample_rate, input.*)")
    x.add_argument("--out", type=Path, required=True, metavar="OUT.wav")
    x.add_argument("--model", type=Path, metavar="P", help="timbre-gmvae checkpoint (default: the shipped one)")

    c = sub.add_parser("send", help="send one OSC message and print the replies")
    c.add_argument("--host", help="server address (default: find one with zeroconf)")
    c.add_argument("--port", type=int, default=57130)
    c.add_argument("--tcp", action="store_true", help="use TCP (SLIP framing) instead of UDP")
    c.add_argument("--wait", type=float, default=1.0,
                   help="seconds to wait for a reply (or for /synced after an address without one); 0: only send")
    c.add_argument("--list", action="store_true", help="list the servers zeroconf finds, and send nothing")
    c.add_argument("address", nargs="?")
    c.add_argument("args", nargs="*")
    return p
