"""The patch engine built from the config: the preset library and the patch VAE, then the engine."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from timbrespace.config import Config
from timbrespace.engines.patch import FloatArray, PatchEngine, encode_all
from timbrespace.engines.registry import BY_NAME, AudioPlan, EngineLoadError, Wiring
from timbrespace.models.checkpoint import CheckpointError
from timbrespace.models.patch_space import PatchSpace
from timbrespace.patch.bank import BankFormatError
from timbrespace.patch.library import PresetLibrary
from timbrespace.session.context import local


@dataclass
class PreparedPatch:
    """The library and the model loaded; the engine is built once the link exists."""

    cfg: Config
    library: PresetLibrary
    space: PatchSpace
    #: Every preset's latent point, encoded once for all layers (see :func:`encode_all`).
    latents: dict[int, FloatArray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.latents:
            self.latents = encode_all(self.space, self.library)

    @property
    def device(self) -> str:
        """Where the model runs."""
        return str(self.space.device)

    def audio(self) -> AudioPlan:
        """The amSynth voices (audio.synth), sized by ``audio.polyphony``; no frame slots."""
        return AudioPlan(PatchEngine.name, BY_NAME[PatchEngine.name].audio)

    def build(self, wiring: Wiring, saved: Mapping[str, Any] | None) -> PatchEngine:
        """The engine with the saved patch, else the config's initial preset, else its initial map point."""
        engine = PatchEngine(self.space, self.library, wiring.link, block_period=wiring.block_period,
                             inference=wiring.inference, layer=wiring.layer, clock=wiring.clock or time.monotonic,
                             latents=self.latents)
        if saved is not None:
            engine.restore(saved)
        elif self.cfg.patch.initial_preset:
            engine.handlers()["/patch/load"]((self.cfg.patch.initial_preset,), local())
        else:
            engine.handlers()["/latent"](tuple(self.cfg.patch.initial_latent), local())
            engine.flush()
        return engine


def prepare(cfg: Config, device: str) -> PreparedPatch:
    """Load the presets and the patch VAE; EngineLoadError naming the file when either cannot be read."""
    try:
        library = PresetLibrary(cfg.patch.banks, cfg.patch.user_bank)
        space = PatchSpace.load(cfg.patch.model, device=device, num_threads=cfg.inference.threads)
    except (BankFormatError, CheckpointError, OSError, ValueError) as e:
        raise EngineLoadError(str(e)) from None
    return PreparedPatch(cfg, library, space)
