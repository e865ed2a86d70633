"""``timbrespace data mix``: one training set from several sources, with rooms and microphones.

Each source is a data folder with its manifest (``data soundfont`` from FluidR3, MuseScore
General, freepats; ``data folder`` from a user's WAVs), rendered with the same instruments at the
same rate and length. The mix links their notes under ``out/<source>/`` (no copy of the audio),
splits the union by (instrument, pitch), so that no pitch of an instrument is trained in one
source and held out in another, and adds ``copies`` augmented versions of every training note
(:mod:`timbrespace.data.augment`); the held-out notes stay as rendered. The first source is the
reference: its (instrument, pitch) keys keep its own split, so its held-out notes are the ones a
model trained on it alone held out, and today's held-out figures keep their meaning; only keys it
lacks (a key silent in it, sounding in another) are split afresh. The manifest records every
source and every chain drawn.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from timbrespace.data import augment
from timbrespace.data import manifest as mf
from timbrespace.data.soundfont import DataError
from timbrespace.data.split import split_groups
from timbrespace.data.wav import encode_pcm16, read_pcm16
from timbrespace.fsutil import atomic_write_bytes


@dataclass
class MixResult:
    """What a mix did, for the one-line summary."""

    manifest: mf.Manifest
    path: Path
    linked: int
    augmented: int
    seconds: float


def source_name(folder: Path, m: mf.Manifest) -> str:
    """A short, stable name for a source: its SoundFont's or patch set's file stem, else its folder's."""
    return Path(m.soundfont).stem if m.soundfont else folder.resolve().name


def build(
    sources: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    copies: int = 2,
    seed: int = 0,
    progress: Callable[[Iterable[Any], int], Iterable[Any]] | None = None,
) -> MixResult:
    """Mix ``sources`` into ``out`` and write ``out/manifest.json`` last (DataError on bad input)."""
    t0 = time.perf_counter()
    if not sources:
        raise DataError("data mix: give at least one source folder (each with a manifest.json)")
    if not 0 <= copies <= 16:
        raise DataError(f"--copies {copies} is out of range [0, 16]")
    if seed < 0:
        raise DataError(f"--seed {seed} must be >= 0")
    loaded = _load(sources)
    first = loaded[0][1]
    out_dir = Path(out)
    notes: list[mf.Note] = []
    kept_sources: list[mf.Source] = []
    splits = union_split(loaded[0][0], first, [m for _, m, _ in loaded], seed)
    linked = augmented = 0
    plan = [(folder, m, name, n) for folder, m, name in loaded for n in m.notes]
    for folder, m, name in loaded:
        kept_sources.append(mf.Source(name, str((folder / mf.MANIFEST_NAME).resolve()), m.soundfont,
                                      m.soundfont_sha256))
    for folder, _m, name, n in progress(plan, len(plan)) if progress else plan:
        split = splits[(n.instrument, n.pitch)]
        target = f"{name}/{n.file}"
        _link(folder / n.file, out_dir / target)
        notes.append(mf.Note(target, n.instrument, n.instrument_index, n.pitch, n.velocity, split, n.sha256, name,
                             dict(n.augment)))
        linked += 1
        if split != "train" or not copies:
            continue
        audio, rate = read_pcm16((folder / n.file).read_bytes())
        if rate != first.sample_rate:
            raise DataError(f"{folder / n.file}: {rate} Hz, expected {first.sample_rate} Hz (the manifest's rate)")
        stem = target[: -len(".wav")] if target.endswith(".wav") else target
        for k in range(copies):
            file = f"{stem}_aug{k}.wav"
            chain = augment.draw(file, seed)
            data = encode_pcm16(augment.apply(audio, rate, chain, file, seed), rate)
            atomic_write_bytes(out_dir / file, data)
            notes.append(mf.Note(file, n.instrument, n.instrument_index, n.pitch, n.velocity, split,
                                 mf.sha256_bytes(data), name, {**n.augment, **chain.to_dict()}))
            augmented += 1
    manifest = mf.Manifest(first.sample_rate, first.note_off_s, first.duration_s, "", "",
                           instruments=list(first.instruments), notes=notes,
                           dropped=[d for _, m, _ in loaded for d in m.dropped], sources=kept_sources)
    path = manifest.save(out_dir)
    return MixResult(manifest, path, linked, augmented, time.perf_counter() - t0)


def source_counts(path: Path) -> list[dict[str, Any]]:
    """A mixed manifest's sources: name, SoundFont or patch set, notes per split and augmented copies
    ([] for a single source's manifest)."""
    m = mf.load(path)
    return [{"name": s.name, "soundfont": s.soundfont,
             "train": sum(n.source == s.name and n.split == "train" and not n.augment for n in m.notes),
             "valid": sum(n.source == s.name and n.split == "valid" for n in m.notes),
             "augmented": sum(n.source == s.name and bool(n.augment) for n in m.notes)} for s in m.sources]


def union_split(folder: Path, reference: mf.Manifest, manifests: Sequence[mf.Manifest], seed: int
                ) -> dict[tuple[str, int], mf.Split]:
    """Each (instrument, pitch) key's side: the reference manifest's own where it has the key, else
    :func:`split_groups` over the keys it lacks (DataError if the reference splits a key both ways)."""
    kept: dict[tuple[str, int], mf.Split] = {}
    for n in reference.notes:
        key = (n.instrument, n.pitch)
        if kept.setdefault(key, n.split) != n.split:
            raise DataError(f"{folder}: {n.instrument} pitch {n.pitch} is in both splits; the mix keeps the first "
                            "source's split per (instrument, pitch), so render it again")
    rest = {(n.instrument, n.pitch) for m in manifests for n in m.notes} - kept.keys()
    return {**kept, **split_groups(rest, seed=seed)}


def _load(sources: Sequence[str | os.PathLike[str]]) -> list[tuple[Path, mf.Manifest, str]]:
    """Each source's folder, manifest and name; DataError when they cannot be mixed."""
    out: list[tuple[Path, mf.Manifest, str]] = []
    for s in sources:
        folder = Path(s)
        folder = folder.parent if folder.name == mf.MANIFEST_NAME else folder
        try:
            m = mf.load(folder)
        except mf.ManifestError as e:
            raise DataError(f"data mix: {e}") from None
        if m.sources:
            raise DataError(f"{folder}: already a mix; give its sources instead")
        name = source_name(folder, m)
        if any(name == other for _, _, other in out):
            raise DataError(f"{folder}: two sources are named {name!r}; rename one folder")
        if out:
            ref = out[0][1]
            ours = [(i.name, i.index) for i in m.instruments]
            theirs = [(i.name, i.index) for i in ref.instruments]
            if ours != theirs:
                raise DataError(f"{folder}: instruments {[n for n, _ in ours]} differ from {out[0][0]}'s "
                                f"{[n for n, _ in theirs]}; render both with the same instruments")
            if (m.sample_rate, m.note_off_s, m.duration_s) != (ref.sample_rate, ref.note_off_s, ref.duration_s):
                raise DataError(f"{folder}: {m.sample_rate} Hz, note-off {m.note_off_s} s, {m.duration_s} s long; "
                                f"{out[0][0]} has {ref.sample_rate} Hz, {ref.note_off_s} s, {ref.duration_s} s")
        out.append((folder, m, name))
    return out


def _link(src: Path, dst: Path) -> None:
    """``dst`` as a hard link to ``src`` (a copy across file systems); an existing one is replaced."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)
