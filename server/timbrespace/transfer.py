"""Offline timbre transfer of a recorded note (``timbrespace transfer``), as in section 4.4 of the paper.

The note is encoded from its first 500 ms (after leading silence), its timbre code moved by
``alpha * (mu_target - mu_source)`` and decoded, frame by frame, over the note's length at the
note's pitch; the harmonic-plus-noise controls are rendered to a 16-bit WAV at the model's rate.

A whole phrase (``--phrase``: several notes, glides, vibrato) goes through the live input's path
instead (:func:`transfer_phrase`): the same trackers, level follower, encoder and decoder as
``serve --input``, rendered offline at the server's rate (docs/live-transfer.md).
"""

from __future__ import annotations

import io
import math
import os
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch

from timbrespace.config import Config
from timbrespace.fsutil import atomic_write_bytes
from timbrespace.models.timbre_features import logmel, read_wav_mono
from timbrespace.models.timbre_render import midi_to_hz, render_audio
from timbrespace.models.timbre_space import TimbreSpace

FloatArray = npt.NDArray[np.float64]
SILENCE = 10 ** (-60 / 20)  # a peak below -60 dBFS is no note to transfer
ONSET = 0.01  # leading samples below 1% of the peak (-40 dB) are skipped before encoding
VELOCITY = 100.0  # the decoder's velocity input: the evaluation's and a mezzo-forte key press


class TransferError(ValueError):
    """Input that cannot be transferred; the message says what was wrong and what was expected."""


@dataclass(frozen=True)
class TransferResult:
    """What was done: instruments, pitch (and how far the note was from it), length, gain."""

    source: str
    target: str
    source_posterior: float  # p(source | z_t) of the encoded note
    alpha: float
    pitch: int
    detected_pitch: float | None  # CREPE's reading (MIDI), None when --pitch was given
    deviation_cents: float  # the note's pitch (given or detected) minus the pitch played
    seconds: float
    sample_rate: int
    peak: float

    def lines(self) -> list[str]:
        how = "given" if self.detected_pitch is None else "detected"
        dev = f"{self.deviation_cents:+.0f} cents from the note's {how} pitch"
        return [
            f"source {self.source} (p = {self.source_posterior:.2f}) -> target {self.target}, alpha {self.alpha:g}",
            f"pitch MIDI {self.pitch} ({dev}); {self.seconds:.2f} s at {self.sample_rate} Hz, "
            f"peak {20 * math.log10(max(self.peak, 1e-12)):+.1f} dBFS",
        ]


def read_note(path: str | os.PathLike[str]) -> tuple[FloatArray, int]:
    """A WAV as mono float in [-1, 1] and its rate; TransferError for anything else or silence."""
    p = Path(path)
    if not p.is_file():
        raise TransferError(f"{p}: no such file; expected a WAV recording of one note")
    try:
        audio, rate = read_wav_mono(p)
    except (wave.Error, EOFError) as e:
        raise TransferError(f"{p}: not a readable WAV file ({e}); expected 16- or 32-bit PCM WAV") from None
    except ValueError as e:
        raise TransferError(str(e)) from None
    if audio.size == 0 or not np.all(np.isfinite(audio)):
        raise TransferError(f"{p}: no audio samples; expected a recording of one note")
    peak = float(np.max(np.abs(audio)))
    if peak < SILENCE:
        raise TransferError(f"{p}: silent (peak {20 * math.log10(max(peak, 1e-12)):.0f} dBFS); "
                            "expected a note louder than -60 dBFS")
    return audio, rate


def _trim(audio: FloatArray, rate: int) -> FloatArray:
    """Drop leading silence (keeping 10 ms before the onset), so the encoder sees the attack."""
    start = int(np.argmax(np.abs(audio) >= ONSET * np.max(np.abs(audio))))
    return audio[max(0, start - rate // 100) :]


def _write_wav16(path: Path, audio: FloatArray, rate: int) -> None:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(audio, -1.0, 1.0) * 32767.0).round().astype("<i2").tobytes())
    atomic_write_bytes(path, buf.getvalue())  # the whole file or nothing


def transfer_phrase(cfg: Config, src_path: str | os.PathLike[str], out_path: str | os.PathLike[str],
                    target: int | str, *, alpha: float = 1.0) -> tuple[float, int]:
    """Play ``src_path`` through the live input's path toward ``target`` and write ``out_path``
    (16-bit mono at ``audio.sample_rate``); returns its length in seconds and its rate."""
    from timbrespace.engines.registry import EngineLoadError
    from timbrespace.input_file import InputFileError, load_input
    from timbrespace.render import ScoreError, ScoreInput, parse_score, render_score

    if not math.isfinite(alpha):
        raise TransferError(f"alpha {alpha} is not a finite number; expected e.g. 0.5 or 1")
    sr = cfg.audio.sample_rate
    try:
        seconds = len(load_input(src_path, sr)) / sr
    except InputFileError as e:
        raise TransferError(str(e)) from None
    score = parse_score({"events": [{"time": 0.0, "address": "/input/target", "args": [target]},
                                    {"time": 0.0, "address": "/input/alpha", "args": [float(alpha)]},
                                    {"time": 0.0, "address": "/input", "args": [1]}], "duration": seconds + 0.1})
    score.input = ScoreInput(Path(src_path))
    try:
        result = render_score(cfg, score)
    except (ScoreError, EngineLoadError) as e:
        raise TransferError(str(e)) from None
    if result.failures:
        raise TransferError("; ".join(result.failures))
    out = np.asarray(result.audio[:, 0], dtype=np.float64)
    peak = float(np.max(np.abs(out))) if out.size else 0.0
    if peak > 0.999:  # keep the 16-bit file unclipped
        out *= 0.999 / peak
    _write_wav16(Path(out_path), out, sr)
    return len(out) / sr, sr


def transfer_file(
    space: TimbreSpace,
    src_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    target: int | str,
    *,
    source: int | str | None = None,
    alpha: float = 1.0,
    pitch: float | None = None,
) -> TransferResult:
    """Transfer the note in ``src_path`` to ``target`` and write ``out_path`` (see the module docstring).

    ``source`` defaults to the most probable instrument of the note's z_t, ``pitch`` (MIDI) to
    CREPE's reading; either way the pitch played is the nearest one the model was trained on.
    """
    if not math.isfinite(alpha):
        raise TransferError(f"alpha {alpha} is not a finite number; expected e.g. 0.5 or 1")
    if pitch is not None and not (math.isfinite(pitch) and 0 <= pitch <= 127):
        raise TransferError(f"pitch {pitch} is not a MIDI pitch; expected a number in 0-127")
    try:
        tgt = space.instrument(target)
        src_given = None if source is None else space.instrument(source)
    except ValueError as e:
        raise TransferError(str(e)) from None
    audio, rate = read_note(src_path)
    model = space.model
    sr = space.sample_rate
    if rate != sr:
        from timbrespace.evaluate.pitch import resample

        audio = resample(audio, rate, sr)
    audio = _trim(audio, sr)
    feats = logmel(audio, model.spec, n_frames=model.spec.enc_frames)  # the first 500 ms
    with torch.inference_mode():
        z_t = model.encode(torch.as_tensor(feats).unsqueeze(0)).mu_t
        post = model.instrument_posterior(z_t)[0].double().numpy()
    src = int(np.argmax(post)) if src_given is None else src_given
    detected: float | None = None
    if pitch is None:
        from timbrespace.evaluate.pitch import estimate

        est = estimate(audio, sr)
        if not math.isfinite(est.midi) or est.voiced == 0.0:
            raise TransferError(f"{src_path}: no pitch could be detected (CREPE found no voiced frame); "
                                "give the note's pitch with --pitch MIDI")
        detected = est.midi
    heard = detected if detected is not None else float(pitch)  # type: ignore[arg-type]
    grid = np.asarray(model.pitches, dtype=np.float64)
    played = int(grid[np.argmin(np.abs(grid - heard))])
    means = space.means
    z = z_t.double().numpy()[0] + alpha * (means[tgt] - means[src])
    n_frames = max(1, math.ceil(len(audio) / model.spec.hop))
    frames = torch.arange(n_frames)
    with torch.inference_mode():
        p = torch.tensor([float(played)])
        amps, noise = model.decode(torch.as_tensor(z, dtype=torch.float32).unsqueeze(0), model.pitch_latent(p),
                                   frames, torch.as_tensor(midi_to_hz(p.numpy()), dtype=torch.float32),
                                   torch.tensor([VELOCITY]))
    out = render_audio((amps[0].double().numpy(), noise[0].double().numpy()), float(midi_to_hz(played)), sr,
                       model.spec.hop)
    fade = min(len(out), sr // 100)  # the decoder holds the sustain: a 10 ms fade avoids a click at the end
    out[len(out) - fade :] *= np.linspace(1.0, 0.0, fade)
    peak = float(np.max(np.abs(out))) if out.size else 0.0
    if peak > 0.999:  # keep the 16-bit file unclipped
        out *= 0.999 / peak
        peak = 0.999
    _write_wav16(Path(out_path), out, sr)
    return TransferResult(
        source=space.instruments[src], target=space.instruments[tgt], source_posterior=float(post[src]),
        alpha=float(alpha), pitch=played, detected_pitch=detected, deviation_cents=100.0 * (heard - played),
        seconds=len(out) / sr, sample_rate=sr, peak=peak,
    )
