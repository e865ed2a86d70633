"""The training-data manifest: typed, validated on load, written atomically.

One ``manifest.json`` sits at the root of a data folder and lists every WAV in it with its labels
(instrument, pitch, velocity), its train/valid split and its sha256. Both the soundfont renderer
and the user-folder importer write it; the model code reads it with :func:`load`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from timbrespace.fsutil import atomic_write_text

VERSION = 1
MANIFEST_NAME = "manifest.json"
Split = Literal["train", "valid"]


class ManifestError(ValueError):
    """A manifest that cannot be read or does not have the expected shape."""


@dataclass(frozen=True)
class Instrument:
    """One instrument class; ``index`` is its position in the manifest's list (the class label).

    ``program`` and ``bank`` are the General MIDI program and bank it was rendered from, or -1 for
    recordings from a user folder; ``low``/``high`` are the MIDI pitch range covered.
    """

    index: int
    name: str
    program: int
    bank: int
    low: int
    high: int


@dataclass(frozen=True)
class Note:
    """One labelled isolated note; ``file`` is relative to the manifest's folder."""

    file: str
    instrument: str
    instrument_index: int
    pitch: int
    velocity: int
    split: Split
    sha256: str
    #: Where it came from in a mixed set (``Manifest.sources``' name); "" in a single-source set.
    source: str = ""
    #: The room and microphone drawn for an augmented copy (``data.augment.Chain``); {}: the note as rendered.
    augment: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Source:
    """One set a mixed manifest took notes from: its name, where it was, what it was made from."""

    name: str
    manifest: str
    soundfont: str
    soundfont_sha256: str


@dataclass(frozen=True)
class Dropped:
    """A note that was planned but left out, and why."""

    file: str
    instrument: str
    pitch: int
    velocity: int
    reason: str


@dataclass
class Manifest:
    """The whole manifest. ``soundfont``/``soundfont_sha256`` are empty for user-folder data."""

    sample_rate: int
    note_off_s: float
    duration_s: float
    soundfont: str
    soundfont_sha256: str
    instruments: list[Instrument] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    dropped: list[Dropped] = field(default_factory=list)
    version: int = VERSION
    #: The sets a mixed manifest (``timbrespace data mix``) took its notes from; [] otherwise.
    sources: list[Source] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain data in the documented key order; a mix's keys (``sources``, a note's ``source``
        and ``augment``) only where they are set, so a single source's manifest keeps its shape."""
        out = {
            "version": self.version,
            "sample_rate": self.sample_rate,
            "note_off_s": self.note_off_s,
            "duration_s": self.duration_s,
            "soundfont": self.soundfont,
            "soundfont_sha256": self.soundfont_sha256,
            "instruments": [asdict(i) for i in self.instruments],
            "notes": [{k: v for k, v in asdict(n).items() if v or k not in ("source", "augment")}
                      for n in self.notes],
            "dropped": [asdict(d) for d in self.dropped],
        }
        if self.sources:
            out["sources"] = [asdict(x) for x in self.sources]
        return out

    def validate(self, source: str = "manifest") -> None:
        """Check the cross-references: indices, names, pitches, splits, hashes, unique files."""
        names = [i.name for i in self.instruments]
        sources = {x.name for x in self.sources}
        for pos, ins in enumerate(self.instruments):
            if ins.index != pos:
                raise ManifestError(f"{source}: instruments[{pos}].index = {ins.index}, expected {pos}")
            if not 0 <= ins.low <= ins.high <= 127:
                raise ManifestError(f"{source}: instruments[{pos}] range {ins.low}-{ins.high} is not within 0-127")
        if len(set(names)) != len(names):
            raise ManifestError(f"{source}: duplicate instrument names in {names}")
        seen: set[str] = set()
        for k, n in enumerate(self.notes):
            where = f"{source}: notes[{k}] ({n.file})"
            if n.instrument not in names or names.index(n.instrument) != n.instrument_index:
                raise ManifestError(f"{where}: instrument {n.instrument!r}/{n.instrument_index} is not in instruments")
            if not 0 <= n.pitch <= 127 or not 0 <= n.velocity <= 127:
                raise ManifestError(f"{where}: pitch {n.pitch} / velocity {n.velocity} must be within 0-127")
            if n.split not in ("train", "valid"):
                raise ManifestError(f"{where}: split {n.split!r} must be 'train' or 'valid'")
            if len(n.sha256) != 64:
                raise ManifestError(f"{where}: sha256 {n.sha256!r} is not 64 hex digits")
            if n.file in seen or Path(n.file).is_absolute() or ".." in Path(n.file).parts:
                raise ManifestError(f"{where}: file must be unique and relative to the manifest's folder")
            seen.add(n.file)
            if n.source and n.source not in sources:
                raise ManifestError(f"{where}: source {n.source!r} is not in sources")
            if any(not isinstance(v, (int, float)) or not math.isfinite(v) for v in n.augment.values()):
                raise ManifestError(f"{where}: augment values must be finite numbers")

    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Validate, then write ``folder/manifest.json`` atomically; returns its path."""
        self.validate()
        path = Path(folder) / MANIFEST_NAME
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1) + "\n")
        return path


def from_dict(data: object, source: str = "manifest") -> Manifest:
    """Build and validate a Manifest from parsed JSON."""
    if not isinstance(data, dict):
        raise ManifestError(f"{source}: top level must be an object")
    if data.get("version") != VERSION:
        raise ManifestError(f"{source}: version = {data.get('version')!r}, expected {VERSION}")
    try:
        m = Manifest(
            sample_rate=_typed(data, "sample_rate", int, source),
            note_off_s=float(_typed(data, "note_off_s", (int, float), source)),
            duration_s=float(_typed(data, "duration_s", (int, float), source)),
            soundfont=_typed(data, "soundfont", str, source),
            soundfont_sha256=_typed(data, "soundfont_sha256", str, source),
            instruments=[Instrument(**i) for i in _typed(data, "instruments", list, source)],
            notes=[Note(**n) for n in _typed(data, "notes", list, source)],
            dropped=[Dropped(**d) for d in _typed(data, "dropped", list, source)],
            sources=[Source(**x) for x in data.get("sources", [])],
        )
    except TypeError as e:  # a missing or unknown key inside an entry
        raise ManifestError(f"{source}: bad entry: {e}") from None
    m.validate(source)
    return m


def load(path: str | os.PathLike[str]) -> Manifest:
    """Read a manifest file, or ``manifest.json`` inside a folder."""
    p = Path(path)
    if p.is_dir():
        p = p / MANIFEST_NAME
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise ManifestError(f"cannot read manifest {p}: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise ManifestError(f"{p}: not valid JSON: {e}") from None
    return from_dict(data, source=str(p))


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of bytes."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks (soundfonts are 100+ MB)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _typed(data: dict[str, Any], key: str, tp: type | tuple[type, ...], source: str) -> Any:
    if key not in data:
        raise ManifestError(f"{source}: missing key {key!r}")
    value = data[key]
    if not isinstance(value, tp) or isinstance(value, bool):
        raise ManifestError(f"{source}: {key} = {value!r} has the wrong type")
    return value
