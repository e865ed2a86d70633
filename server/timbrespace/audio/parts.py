"""What the audio side builds for each engine, and the fader that makes one of them heard.

For each engine the server runs, the audio process (or the renderer) calls the builder its
:class:`~timbrespace.engines.registry.AudioPlan` names with an :class:`AudioContext`; the
:class:`AudioPart` it returns gives the engine's output to :class:`EngineMix` and its voices to
the :class:`~timbrespace.audio.player.Player`, which applies each command kind to the voices
that kind is for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyo

from timbrespace.engines.registry import AudioPlan, resolve
from timbrespace.link.frames import FrameSlots
from timbrespace.link.layers import LayerSound

SWITCH_S = 0.02  # the engine switch fades over this long (no click)
#: Every engine's output is stereo (amSynth's is), whatever ``audio.channels`` plays.
CHANNELS = 2


@dataclass(frozen=True)
class AudioContext:
    """What an engine's audio builder gets: the audio settings, its plan's settings and frame slots."""

    sample_rate: int
    polyphony: int
    settings: Mapping[str, Any] = field(default_factory=dict)
    frames: FrameSlots | None = None


@dataclass
class AudioPart:
    """One engine's audio side: its output, and what the Player drives (Player keyword -> object)."""

    output: Any
    player: dict[str, Any]


def build_parts(plans: Sequence[AudioPlan], frames: Mapping[str, FrameSlots], sample_rate: int,
                polyphony: int) -> dict[str, AudioPart]:
    """Each plan's part, by engine name (``frames``: the slots of the plans that have some)."""
    parts = {}
    for plan in plans:
        ctx = AudioContext(sample_rate, polyphony, plan.settings, frames.get(plan.engine))
        part = resolve(plan.builder)(ctx)
        if not isinstance(part, AudioPart):
            raise TypeError(f"{plan.builder} returned {type(part).__name__}; expected an AudioPart")
        parts[plan.engine] = part
    return parts


def player_args(parts: Mapping[str, AudioPart]) -> dict[str, Any]:
    """The Player's keyword arguments from every part."""
    out: dict[str, Any] = {}
    for part in parts.values():
        out.update(part.player)
    return out


class EngineMix:
    """The engines' outputs through one fader each: only the selected engine is heard."""

    def __init__(self, outputs: dict[str, Any], selected: str) -> None:
        self._gains = {name: pyo.SigTo(1.0 if name == selected else 0.0, time=SWITCH_S) for name in outputs}
        self.output = pyo.Mix([out * self._gains[name] for name, out in outputs.items()], voices=len(
            next(iter(outputs.values()))))

    def select(self, name: str) -> None:
        """Fade ``name`` in and the others out."""
        if name not in self._gains:
            return
        for n, g in self._gains.items():
            g.setValue(1.0 if n == name else 0.0)


class LayerMix:
    """Every layer's engines through its :class:`EngineMix`, placed by its :class:`LayerSound`, summed."""

    def __init__(self, layers: Sequence[tuple[dict[str, Any], str, LayerSound]],
                 beside: dict[int, Any] | None = None) -> None:
        """``beside``: a sound of a layer's that is no engine's (the live input's voice), by layer:
        heard whichever engine is, placed with the layer."""
        self.engines = [EngineMix(outputs, selected) for outputs, selected, _ in layers]
        # Ramped like the engine switch: a gain or pan moved live must not click.
        self._gains = [pyo.SigTo(sound.channel_gains(), time=SWITCH_S) for _, _, sound in layers]
        extra = beside or {}
        # Summed by a Mix, not +: a stopped object (the input off) adds nothing.
        self._layered = [pyo.Mix([mix.output, extra[i]], voices=CHANNELS) if i in extra else mix.output
                         for i, mix in enumerate(self.engines)]
        self._placed = [out * gains for out, gains in zip(self._layered, self._gains)]
        self.output = pyo.Mix(self._placed, voices=CHANNELS)

    def place(self, layer: int, sound: LayerSound) -> None:
        """Move layer ``layer`` to ``sound``'s gain and pan."""
        if 0 <= layer < len(self._gains):
            self._gains[layer].setValue(sound.channel_gains())
