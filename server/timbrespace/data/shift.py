"""Shifted copies: a note played from another key's sample, resampled to the labelled pitch (issue 17).

A SoundFont plays most keys from a neighbouring key's sample, sped up or slowed down, so its
formants, attack and vibrato rate move with the pitch; FluidR3 has a sample every 2-3 keys, a
smaller set stretches each over more keys, and which key gets which sample differs between sets.
A shifted copy renders key ``pitch - shift`` for ``2 ** (shift / 12)`` times as long and resamples
it to the data's length: it sounds at ``pitch`` exactly (the label stays true), its note-off and
length land where a plain note's do, and its spectrum, attack and vibrato are those of a sample
transposed by ``shift`` semitones.
"""

from __future__ import annotations

import hashlib
from typing import Protocol

import numpy as np
from scipy import signal

from timbrespace.data.wav import FloatArray

#: The widest shift drawn, in semitones: a sample every octave covers its keys within 6 semitones.
MAX_SHIFT = 6


class Renderer(Protocol):
    """What a shifted copy needs of FluidRenderer or TimidityRenderer."""

    def render(self, bank: int, program: int, pitch: int, velocity: int, note_off_s: float, duration_s: float
               ) -> FloatArray: ...


def draw(key: str, allowed: set[int], seed: int = 0, max_shift: int = MAX_SHIFT) -> int | None:
    """The shift of the copy named ``key`` (its file name), seeded by the name: a non-zero number of
    semitones in ``[-max_shift, max_shift]`` that is in ``allowed``; None when none is."""
    if max_shift < 1:
        raise ValueError(f"max_shift {max_shift} must be >= 1")
    choices = [k for k in range(-max_shift, max_shift + 1) if k and k in allowed]
    if not choices:
        return None
    digest = hashlib.sha256(f"shift:{seed}:{key}".encode()).digest()
    return choices[int.from_bytes(digest[:8], "little") % len(choices)]


def render(renderer: Renderer, bank: int, program: int, pitch: int, velocity: int, shift: int,
           note_off_s: float, duration_s: float, sample_rate: int) -> FloatArray:
    """``pitch`` played from key ``pitch - shift``: ``duration_s`` of float audio, note-off at ``note_off_s``."""
    key = pitch - shift
    if not 0 <= key <= 127:
        raise ValueError(f"pitch {pitch} shifted by {shift} plays key {key}, outside MIDI's [0, 127]")
    ratio = 2.0 ** (shift / 12.0)
    n = round(duration_s * sample_rate)
    long = np.asarray(renderer.render(bank, program, key, velocity, note_off_s * ratio, duration_s * ratio),
                      np.float64)
    # Silence after the note keeps the FFT resampler's wrap-around from ringing into the attack.
    pad = np.pad(long, (0, len(long) // 4))
    out = signal.resample(pad, round(len(pad) / ratio))[:n]
    if len(out) < n:
        out = np.pad(out, (0, n - len(out)))
    return np.asarray(out, np.float32)
