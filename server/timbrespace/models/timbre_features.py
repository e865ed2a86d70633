"""Log-mel features of a rendered note set (the soundfont manifest), cached on disk by the manifest's sha256.

Per note: power STFT (Hann 2048, hop 256, centred with zero padding) of the
first ``n_frames`` frames, a 256-band Slaney mel filterbank, natural log of
``power + floor``.  The encoder reads the first 43 frames (500 ms), the decoder
is trained against all of them (129 frames = 1.5 s, the sustain up to note-off).
Normalisation to [-1, 1] uses the training split's min and max, kept with the
model (:class:`Normaliser`).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import wave
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from timbrespace.fsutil import atomic_write_bytes
from timbrespace.models.timbre_render import StftSpec, mel_filterbank

DEFAULT_MANIFEST = "var/data/soundfont/manifest.json"
DEFAULT_CACHE = "var/cache/timbre-features"
_CACHE_VERSION = 1


@dataclass(frozen=True)
class FeatureSpec:
    """How log-mel frames are computed (part of the cache key and the model config)."""

    sample_rate: int = 22050
    n_fft: int = 2048
    hop: int = 256
    n_mels: int = 256
    enc_frames: int = 43  # 500 ms: the encoder's input, as in the paper
    dec_frames: int = 129  # 1.5 s: note-on to note-off, what the decoder learns to sustain
    floor: float = 1e-5  # added to mel power before the log (about -100 dB re a full-scale sine)

    @property
    def stft(self) -> StftSpec:
        return StftSpec(self.sample_rate, self.n_fft, self.hop, self.n_mels)


@dataclass(frozen=True)
class Normaliser:
    """Maps log-mel values ``[lo, hi]`` (the training set's range) to [-1, 1]."""

    lo: float
    hi: float

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.lo) * (2.0 / (self.hi - self.lo)) - 1.0


@dataclass(frozen=True)
class NoteSet:
    """Every note of a manifest with its features and labels (arrays share the first axis)."""

    logmel: npt.NDArray[np.float32]  # (N, dec_frames, n_mels), natural log of mel power + floor
    instrument: npt.NDArray[np.int64]  # index into ``instruments``
    pitch: npt.NDArray[np.int64]  # MIDI
    velocity: npt.NDArray[np.int64]
    train: npt.NDArray[np.bool_]  # the manifest's split: True = "train", False = "valid"
    #: True for an augmented copy (a room, microphone or shifted key: the manifest's ``augment``), False
    #: for a note as its source played it.
    augmented: npt.NDArray[np.bool_]
    files: list[str]
    instruments: list[str]
    manifest_sha256: str
    spec: FeatureSpec

    def __len__(self) -> int:
        return len(self.files)


def read_wav_mono(path: str | os.PathLike[str]) -> tuple[npt.NDArray[np.float64], int]:
    """A 16- or 32-bit PCM WAV as float64 mono in [-1, 1], and its sample rate."""
    with wave.open(str(path)) as w:
        width, channels, rate = w.getsampwidth(), w.getnchannels(), w.getframerate()
        raw = w.readframes(w.getnframes())
    if width not in (2, 4):
        raise ValueError(f"{path}: {8 * width}-bit WAV; expected 16- or 32-bit PCM")
    audio = np.frombuffer(raw, {2: "<i2", 4: "<i4"}[width]) / float(1 << (8 * width - 1))
    return audio.reshape(-1, channels).mean(axis=1), rate


def logmel(audio: npt.ArrayLike, spec: FeatureSpec, n_frames: int | None = None) -> npt.NDArray[np.float32]:
    """``(n_frames, n_mels)`` log mel power of mono ``audio`` (zero-padded if short)."""
    frames = spec.dec_frames if n_frames is None else n_frames
    need = (frames - 1) * spec.hop + 1
    x = torch.as_tensor(np.asarray(audio, dtype=np.float64))
    if x.numel() < need:
        x = torch.nn.functional.pad(x, (0, need - x.numel()))
    x = x[: (frames - 1) * spec.hop + 1]  # exactly `frames` centred frames
    stft = torch.stft(
        x,
        spec.n_fft,
        spec.hop,
        window=torch.hann_window(spec.n_fft, dtype=torch.float64),
        center=True,
        pad_mode="constant",
        return_complex=True,
    )
    power = stft.abs().pow(2).numpy()  # (bins, frames)
    mel = mel_filterbank(spec.stft) @ power
    return np.asarray(np.log(mel.T + spec.floor), dtype=np.float32)


def _cache_key(manifest_sha: str, spec: FeatureSpec) -> str:
    blob = json.dumps({"v": _CACHE_VERSION, "manifest": manifest_sha, "spec": asdict(spec)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def load_notes(
    manifest: str | os.PathLike[str] = DEFAULT_MANIFEST,
    spec: FeatureSpec | None = None,
    cache_dir: str | os.PathLike[str] | None = DEFAULT_CACHE,
) -> NoteSet:
    """Read the manifest, and the features from the cache or from the WAVs (then cache them)."""
    spec = spec or FeatureSpec()
    path = Path(manifest)
    raw = path.read_bytes()
    sha = hashlib.sha256(raw).hexdigest()
    doc: dict[str, Any] = json.loads(raw)
    if int(doc.get("sample_rate", spec.sample_rate)) != spec.sample_rate:
        raise ValueError(f"{path}: sample rate {doc['sample_rate']}, the features expect {spec.sample_rate}")
    instruments = [str(i["name"]) for i in sorted(doc["instruments"], key=lambda i: int(i["index"]))]
    notes = doc["notes"]
    if not notes:
        raise ValueError(f"{path}: no notes")
    cache = Path(cache_dir) / f"{_cache_key(sha, spec)}.npz" if cache_dir is not None else None
    if cache is not None and cache.exists():
        with np.load(cache) as z:
            feats = z["logmel"]
    else:
        feats = np.stack([_note_features(path.parent / n["file"], spec) for n in notes])
        if cache is not None:
            buf = io.BytesIO()
            np.savez(buf, logmel=feats)
            atomic_write_bytes(cache, buf.getvalue())
    return NoteSet(
        logmel=feats.astype(np.float32),
        instrument=np.array([int(n["instrument_index"]) for n in notes], dtype=np.int64),
        pitch=np.array([int(n["pitch"]) for n in notes], dtype=np.int64),
        velocity=np.array([int(n["velocity"]) for n in notes], dtype=np.int64),
        train=np.array([n.get("split", "train") == "train" for n in notes], dtype=np.bool_),
        augmented=np.array([bool(n.get("augment")) for n in notes], dtype=np.bool_),
        files=[str(n["file"]) for n in notes],
        instruments=instruments,
        manifest_sha256=sha,
        spec=spec,
    )


def _note_features(wav: Path, spec: FeatureSpec) -> npt.NDArray[np.float32]:
    audio, rate = read_wav_mono(wav)
    if rate != spec.sample_rate:
        raise ValueError(f"{wav}: {rate} Hz, expected {spec.sample_rate}")
    return logmel(audio, spec)
