"""The master bus: what every layer, voice and the live input sum to, kept under full scale.

One server plays for many people at once, and their sounds add up: eight loud timbre notes peak
well above 0 dBFS, which JACK or a sound card would clip hard. The bus limits the sum before it
leaves:

- a stereo-linked gain: the louder channel's peak, followed with a 0.1 ms attack and a 0.3 s
  release, sets ``gain = ceiling / max(peak, ceiling)`` (both channels alike, so the image stays);
- then a soft clip that bends whatever the follower's attack lets through towards full scale
  (``ceiling + (1 - ceiling) * tanh(excess / (1 - ceiling))``) and never past it.

Below the ceiling the bus changes nothing: the gain is exactly 1 and the clip passes the signal
as it is, so a single patch (amSynth's own limiter holds it under 0.9) sounds as amSynth does.
The output meter reads the sum *before* the bus: above the ceiling it says by how much the players
drive the limiter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pyo

ATTACK_S = 0.0001
RELEASE_S = 0.3


@dataclass(frozen=True)
class MasterBus:
    """The limited output (``output.out()`` plays it) and the pyo objects it needs kept alive."""

    output: pyo.PyoObject
    keep: tuple[object, ...]


def ceiling_gain(ceiling_db: float) -> float:
    """The ceiling as a linear peak; refused at or above full scale (the soft clip needs room)."""
    if not -60.0 <= ceiling_db < 0.0:
        raise ValueError(f"the master ceiling must be from -60 up to (not including) 0 dBFS, got {ceiling_db}")
    return float(10.0 ** (ceiling_db / 20.0))


def master_bus(summed: pyo.PyoObject, ceiling_db: float) -> MasterBus:
    """Limit ``summed`` (stereo: every layer, the live input among them) to ``ceiling_db`` (dBFS)."""
    ceiling = ceiling_gain(ceiling_db)
    # pyo's Follower2 time constants are its arguments / 2 pi.
    rectified = pyo.Abs(summed)
    louder = pyo.Max(rectified[0], rectified[1])
    peak = pyo.Follower2(louder, 2.0 * math.pi * ATTACK_S, 2.0 * math.pi * RELEASE_S)
    gain = ceiling / pyo.Max(peak, ceiling)
    limited = summed * gain
    room = 1.0 - ceiling
    over = pyo.Max(limited, ceiling) - ceiling  # >= 0, 0 unless above the ceiling
    under = pyo.Min(limited, -ceiling) + ceiling  # <= 0, 0 unless below minus the ceiling
    bent = pyo.Tanh(over * (1.0 / room), mul=room) + pyo.Tanh(under * (1.0 / room), mul=room)
    output = limited - over - under + bent
    return MasterBus(output, (rectified, louder, peak, gain, limited, over, under, bent))
