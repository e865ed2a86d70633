"""The timbre engine built from the config: the pitch/timbre model, its voices' layout, then the engine."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from timbrespace.config import Config
from timbrespace.engines.registry import BY_NAME, AudioPlan, EngineLoadError, FrameShape, Unavailable, Wiring
from timbrespace.engines.timbre import TimbreEngine
from timbrespace.link.wavetable import TABLE_SIZE
from timbrespace.models.checkpoint import CheckpointError
from timbrespace.models.timbre_space import TimbreSpace


@dataclass
class PreparedTimbre:
    """The model loaded and the corners resolved; the engine is built once the link and frames exist."""

    cfg: Config
    space: TimbreSpace
    corners: tuple[str, str, str, str]

    @property
    def device(self) -> str:
        """Where the model runs."""
        return str(self.space.device)

    def noise_centres_hz(self) -> tuple[float, ...]:
        """The noise bands the voices filter, one per band of the model."""
        centres = list(self.space.noise_centres_hz())
        centres[0] = centres[1] / 2.0  # the model's first band sits on 0 Hz; a band-pass cannot
        return tuple(centres)

    def audio(self) -> AudioPlan:
        """``timbre.polyphony`` additive voices fed by as many frame slots (audio.timbre_voices)."""
        t = self.cfg.timbre
        centres = self.noise_centres_hz()
        return AudioPlan(TimbreEngine.name, BY_NAME[TimbreEngine.name].audio,
                         {"noise_centres_hz": centres, "release_s": t.release, "gain": t.gain},
                         FrameShape(t.polyphony, TABLE_SIZE, len(centres)))

    def build(self, wiring: Wiring, saved: Mapping[str, Any] | None) -> TimbreEngine:
        """The engine on ``wiring.frames``, in its saved state when there is one."""
        if wiring.frames is None:
            raise ValueError("the timbre engine needs frame slots (its AudioPlan.frames)")
        t = self.cfg.timbre
        engine = TimbreEngine(self.space, wiring.link, wiring.frames, sample_rate=wiring.sample_rate,
                              corners=self.corners, map_kind=t.map, release_s=t.release,
                              inference=wiring.inference, layer=wiring.layer,
                              clock=wiring.clock or time.monotonic)
        if saved is not None:
            engine.restore(saved)
        return engine


def prepare(cfg: Config, device: str) -> PreparedTimbre | Unavailable:
    """The model when enabled and present; EngineLoadError when it is there but cannot be used."""
    t = cfg.timbre
    if not t.enabled:
        return Unavailable("disabled in the config (timbre.enabled)", warn=False)
    if not t.model.exists():
        return Unavailable(f"no model at {t.model} (train one with `timbrespace train timbre`)")
    try:
        space = TimbreSpace.load(t.model, device=device, num_threads=cfg.inference.threads)
    except (CheckpointError, OSError, ValueError) as e:
        raise EngineLoadError(f"timbre model {t.model}: {e}") from None
    return PreparedTimbre(cfg, space, corners(cfg, space))


def corners(cfg: Config, space: TimbreSpace) -> tuple[str, str, str, str]:
    """The instruments ``timbre.corners`` names, by name; EngineLoadError for one the model lacks."""
    names = []
    for ref in cfg.timbre.corners:
        try:
            names.append(space.instruments[space.instrument(ref)])
        except ValueError as e:
            raise EngineLoadError(f"config timbre.corners: {e}") from None
    return (names[0], names[1], names[2], names[3])
