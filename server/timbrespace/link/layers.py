"""What the audio process needs to know about each layer: where it sits in the mix.

A layer is a whole instrument (every engine's voices, its own patch slot and frame slots); the
control side says how loud it is and where it stands, and the audio side mixes the layers so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: A layer's gain (linear) and pan: what config ``layers`` and ``/mix/gain``, ``/mix/pan`` accept.
GAIN_RANGE = (0.0, 4.0)
PAN_RANGE = (-1.0, 1.0)


@dataclass(frozen=True)
class LayerSound:
    """Where a layer sits in the mix: its gain and its pan (-1 left .. 1 right, equal power)."""

    gain: float = 1.0
    pan: float = 0.0

    def channel_gains(self) -> list[float]:
        """Left and right gains."""
        theta = (self.pan + 1.0) * math.pi / 4.0
        # Centre is unity on both sides (as one layer always sounded), the edges +3 dB on one side.
        return [self.gain * math.cos(theta) * math.sqrt(2.0), self.gain * math.sin(theta) * math.sqrt(2.0)]
