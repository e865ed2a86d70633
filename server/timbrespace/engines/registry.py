"""Every engine the server can run, declared once.

An :class:`EngineSpec` says what the rest of the server needs to know about an engine: its name
(the ``/engine`` argument, its code on the link, the key of its snapshot in the state file), what
its names name, why it may be missing, how the control side is built from the config, and what
the audio process builds for it. ``serve``, ``render``, the bench and the audio host iterate
:data:`SPECS` instead of naming engines.

This module imports nothing of the package at its top, so that the address declaration and the
config can take the engines' names from it without an import cycle. The builders are named by
dotted paths and imported when called: the control side's (``engines/*_setup.py``) would pull in
torch, and the audio side's (``audio/*``) pyo, which only the audio process and the renderer may
load (engines/ never imports audio/: tests/test_layering.py).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from timbrespace.config import Config
    from timbrespace.engines.base import Engine, RawLink
    from timbrespace.engines.inference import Inference
    from timbrespace.link.frames import FrameSlots

log = logging.getLogger(__name__)


class EngineLoadError(ValueError):
    """An engine the config asks for cannot be built (a broken model, a bad config value); the text says why."""


@dataclass(frozen=True)
class Unavailable:
    """An optional engine that does not run: why (logged at start when ``warn``)."""

    reason: str
    warn: bool = True


@dataclass(frozen=True)
class FrameShape:
    """Per-voice frame slots the engine writes and its audio side reads (``link.frames.FrameSlots``)."""

    slots: int
    table_size: int
    n_noise: int


@dataclass(frozen=True)
class AudioPlan:
    """What the audio process builds for one engine: plain data, it crosses the process boundary.

    ``builder`` is the dotted path of a function ``(AudioContext) -> AudioPart`` in ``audio/``,
    resolved inside the audio process (or the renderer); ``settings`` are its keyword data.
    """

    engine: str
    builder: str
    settings: Mapping[str, Any] = field(default_factory=dict)
    frames: FrameShape | None = None


@dataclass
class Wiring:
    """What an engine is connected to once the audio side exists."""

    link: RawLink
    sample_rate: float
    block_period: float
    #: The engine's frame slots (those of its AudioPlan.frames), None when it has none.
    frames: FrameSlots | None = None
    clock: Callable[[], float] | None = None
    #: Where the engine's model calls run (shared by all engines); None: inline, at once.
    inference: Inference | None = None
    #: The layer the engine plays.
    layer: int = 0


class Prepared(Protocol):
    """An engine's model loaded from the config: what the audio side needs, then the engine itself."""

    #: Where the model runs ("cpu", "cuda").
    device: str

    def audio(self) -> AudioPlan:
        """What the audio process builds for this engine."""

    def build(self, wiring: Wiring, saved: Mapping[str, Any] | None) -> Engine:
        """The engine, in its saved state (its snapshot) or, with none, the config's initial one."""


@dataclass(frozen=True)
class EngineSpec:
    """One engine, as the rest of the server knows it."""

    #: The ``/engine`` argument; also its snapshot's key in the state file and its link code's key.
    name: str
    #: A few words for the ``/engine`` documentation.
    summary: str
    #: What its names name, for a /fail sent when another engine is heard (``Engine.item``).
    item: str
    #: Dotted path of ``prepare(cfg: Config, device: str) -> Prepared | Unavailable``.
    control: str
    #: Dotted path of the audio process's builder (see :class:`AudioPlan`).
    audio: str
    #: Why a server may lack it, for the /fail that names it; "" for an engine every server runs.
    missing: str = ""

    @property
    def required(self) -> bool:
        """Whether every server runs it (a failure to build it stops the server)."""
        return not self.missing

    def prepare(self, cfg: Config, device: str) -> Prepared | Unavailable:
        """Load the engine's model as the config says; EngineLoadError when the config cannot be honoured."""
        prepare: Callable[[Config, str], Prepared | Unavailable] = resolve(self.control)
        return prepare(cfg, device)

    def addresses(self) -> tuple[str, ...]:
        """The addresses a server without this engine answers with a /fail naming it.

        Declared with each address (``Address.engine`` in protocol/addresses.py). An engine every
        server runs needs no such mark on the addresses only it serves (the patch engine's /patch/*).
        """
        from timbrespace.protocol.addresses import ADDRESSES

        return tuple(a.path for a in ADDRESSES if a.engine == self.name)


#: Every engine, in link-code order; the first is the one a server starts with unless told otherwise.
SPECS: tuple[EngineSpec, ...] = (
    EngineSpec("patch", "amSynth presets", "patch preset",
               control="timbrespace.engines.patch_setup:prepare", audio="timbrespace.audio.synth:engine_part"),
    EngineSpec("timbre", "the pitch/timbre model", "timbre instrument",
               control="timbrespace.engines.timbre_setup:prepare", audio="timbrespace.audio.timbre_voices:engine_part",
               missing="the timbre model was not found or disabled in the config"),
)
#: The engines' names, in order.
NAMES: tuple[str, ...] = tuple(s.name for s in SPECS)
BY_NAME: dict[str, EngineSpec] = {s.name: s for s in SPECS}


def resolve(path: str) -> Any:
    """The object a dotted path ``package.module:attribute`` names; ValueError when there is none."""
    module, _, attr = path.partition(":")
    if not module or not attr:
        raise ValueError(f"engine builder {path!r}: expected 'package.module:attribute'")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"engine builder {path!r}: {e}") from None


def prepare_all(cfg: Config, device: str) -> dict[str, Prepared]:
    """Every engine the config lets this server run, by name, in registry order.

    An optional engine that cannot run is left out (logged once, with why); EngineLoadError when a
    required one cannot, or when the config asks for something an engine cannot do.
    """
    out: dict[str, Prepared] = {}
    for spec in SPECS:
        prepared = spec.prepare(cfg, device)
        if isinstance(prepared, Unavailable):
            if spec.required:
                raise EngineLoadError(f"the {spec.name} engine: {prepared.reason}")
            if prepared.warn:
                log.warning("%s engine off: %s", spec.name, prepared.reason)
            continue
        out[spec.name] = prepared
    return out
