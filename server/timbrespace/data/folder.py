"""``timbrespace data folder DIR``: a user's own labelled recordings as a training set.

``DIR/labels.csv`` has the columns ``file,instrument,pitch`` and optionally ``velocity``; ``file`` is
relative to DIR. Every row is read, checked and resampled to 22050 Hz mono before anything is
written, so bad input leaves the output folder as it was. Files are cut or zero-padded to
``duration_s`` so every note in a manifest has the same length.
"""

from __future__ import annotations

import csv
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from timbrespace.data import manifest as mf
from timbrespace.data.soundfont import DURATION_S, SAMPLE_RATE, SILENCE_DBFS, DataError
from timbrespace.data.split import split_groups
from timbrespace.data.wav import FloatArray, dbfs, encode_pcm16, peak
from timbrespace.fsutil import atomic_write_bytes

LABELS = "labels.csv"
REQUIRED = ("file", "instrument", "pitch")
#: Velocity recorded for rows that give none (the middle of the soundfont set's 64/100/127).
DEFAULT_VELOCITY = 100
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")  # instrument names become folder names
_MAX_ERRORS = 20


@dataclass
class FolderResult:
    """What an import did."""

    manifest: mf.Manifest
    path: Path
    seconds: float
    peak: float
    gain: float


@dataclass
class _Row:
    line: int
    source: Path
    instrument: str
    pitch: int
    velocity: int
    audio: FloatArray


def build(src: str | os.PathLike[str], out: str | os.PathLike[str], *, seed: int = 0,
          duration_s: float = DURATION_S) -> FolderResult:
    """Import ``src`` (a folder with labels.csv) into ``out`` with a manifest; raises DataError."""
    t0 = time.perf_counter()
    src_dir = Path(src)
    rows = _read_rows(src_dir, duration_s)
    # One gain for the whole set: resampling can overshoot full scale, and a common factor keeps
    # the recordings' relative dynamics (the paper normalises corpus-wide for the same reason).
    top = max(peak(r.audio) for r in rows)
    gain = min(1.0, 0.999 / top) if top > 0 else 1.0

    names = sorted({r.instrument for r in rows})
    index = {n: i for i, n in enumerate(names)}
    kept: list[tuple[_Row, str, bytes]] = []
    dropped: list[mf.Dropped] = []
    used: set[str] = set()
    for r in rows:
        file = _unique(f"{r.instrument}/{r.instrument}_{r.pitch:03d}_v{r.velocity:03d}", used)
        audio = (gain * r.audio).astype(np.float32)
        if dbfs(peak(audio)) < SILENCE_DBFS:
            dropped.append(mf.Dropped(file, r.instrument, r.pitch, r.velocity,
                                      f"silent: {r.source} (line {r.line}) peaks at {dbfs(peak(audio)):.1f} dBFS"))
            continue
        kept.append((r, file, encode_pcm16(audio, SAMPLE_RATE)))
    if not kept:
        raise DataError(f"{src_dir / LABELS}: every file is silent; nothing to import")

    out_dir = Path(out)
    for _, file, data in kept:
        atomic_write_bytes(out_dir / file, data)
    splits = split_groups(((r.instrument, r.pitch) for r, _, _ in kept), seed=seed)
    instruments = []
    for n in names:
        ps = [r.pitch for r, _, _ in kept if r.instrument == n] or [r.pitch for r in rows if r.instrument == n]
        instruments.append(mf.Instrument(index[n], n, -1, -1, min(ps), max(ps)))
    manifest = mf.Manifest(
        sample_rate=SAMPLE_RATE,
        note_off_s=duration_s,  # unknown for recordings: recorded as held to the end of the file
        duration_s=duration_s,
        soundfont="",
        soundfont_sha256="",
        instruments=instruments,
        notes=[mf.Note(file, r.instrument, index[r.instrument], r.pitch, r.velocity,
                       splits[(r.instrument, r.pitch)], mf.sha256_bytes(data)) for r, file, data in kept],
        dropped=dropped,
    )
    path = manifest.save(out_dir)
    return FolderResult(manifest, path, time.perf_counter() - t0, gain * top, gain)


def _read_rows(src_dir: Path, duration_s: float) -> list[_Row]:
    """Parse and load every row, collecting all the errors before raising."""
    labels = src_dir / LABELS
    try:
        with labels.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = [h.strip() for h in reader.fieldnames or []]
            missing = [c for c in REQUIRED if c not in header]
            if missing:
                raise DataError(f"{labels}: missing column(s) {', '.join(missing)}; expected a header "
                                f"'file,instrument,pitch[,velocity]', got {','.join(header) or 'nothing'}")
            raw = [({(k or "").strip(): (v or "").strip() for k, v in row.items()}, reader.line_num)
                   for row in reader]
    except OSError as e:
        raise DataError(f"cannot read {labels}: {e.strerror} (expected {LABELS} in {src_dir})") from None
    if not raw:
        raise DataError(f"{labels}: no rows")
    rows: list[_Row] = []
    errors: list[str] = []
    for row, line in raw:
        try:
            rows.append(_load_row(src_dir, row, line, duration_s))
        except DataError as e:
            errors.append(str(e))
    if errors:
        more = f"\n... and {len(errors) - _MAX_ERRORS} more" if len(errors) > _MAX_ERRORS else ""
        raise DataError(f"{len(errors)} bad row(s), nothing written:\n" + "\n".join(errors[:_MAX_ERRORS]) + more)
    return rows


def _load_row(src_dir: Path, row: dict[str, str], line: int, duration_s: float) -> _Row:
    where = f"{src_dir / LABELS} line {line}"
    name = row["instrument"]
    if not _NAME.match(name):
        raise DataError(f"{where}: instrument {name!r} must be letters, digits, '_' or '-'")
    pitch = _int(row["pitch"], "pitch", where)
    vel_text = row.get("velocity", "")
    velocity = _int(vel_text, "velocity", where) if vel_text else DEFAULT_VELOCITY
    if not 0 <= pitch <= 127:
        raise DataError(f"{where}: pitch {pitch} is out of range; expected a MIDI note 0-127")
    if not 1 <= velocity <= 127:
        raise DataError(f"{where}: velocity {velocity} is out of range; expected 1-127")
    if not row["file"]:
        raise DataError(f"{where}: empty file name")
    source = src_dir / row["file"]
    try:
        import soundfile

        data, rate = soundfile.read(str(source), dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises LibsndfileError, RuntimeError, OSError...
        raise DataError(f"{where}: cannot read {source} as audio ({e}); expected a WAV/FLAC/OGG file") from None
    if data.shape[0] == 0:
        raise DataError(f"{where}: {source} holds no audio frames")
    mono = np.ascontiguousarray(data.mean(axis=1, dtype=np.float32))
    if rate != SAMPLE_RATE:
        import librosa

        mono = librosa.resample(mono, orig_sr=rate, target_sr=SAMPLE_RATE).astype(np.float32)
    n = round(duration_s * SAMPLE_RATE)
    mono = np.pad(mono[:n], (0, max(0, n - mono.shape[0])))
    return _Row(line, source, name, pitch, velocity, mono)


def _int(text: str, column: str, where: str) -> int:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value.is_integer():
        raise DataError(f"{where}: {column} {text!r} is not a whole number; expected a MIDI value 0-127")
    return int(value)


def _unique(stem: str, used: set[str]) -> str:
    """``stem.wav``, or ``stem_2.wav``... when several rows share a label."""
    k, file = 1, f"{stem}.wav"
    while file in used:
        k += 1
        file = f"{stem}_{k}.wav"
    used.add(file)
    return file
