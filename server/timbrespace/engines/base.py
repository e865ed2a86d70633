"""The interface every engine implements, and what an engine may call on the synth side.

An engine owns the addresses that shape the sound (map moves, presets, parameters); the app
owns the rest (server queries, notes, sessions). Handlers receive arguments already converted and
validated against ``protocol.addresses`` and a :class:`~timbrespace.session.context.Context` (who
sent them, when), and return their replies.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar, Protocol

import numpy as np
import numpy.typing as npt

from timbrespace.link import commands as C
from timbrespace.protocol.declaration import Value
from timbrespace.session.context import Context

Reply = tuple[str, tuple[Any, ...]]

#: A handler: the declared arguments, converted and validated, and who sent them; its replies.
Handler = Callable[[tuple[Value, ...], Context], list[Reply]]


class HandlerError(ValueError):
    """A well-formed message that cannot be carried out; the text is the ``/fail`` reason."""


class SynthLink(Protocol):
    """The way to the synth: event commands in order, and the newest patch."""

    def send(self, data: bytes) -> bool: ...
    def put_patch(self, values: npt.NDArray[np.float64], arrival: float) -> None: ...


class RawLink(Protocol):
    """The way to every layer's synths (the audio process, or a render's queue): what the ordered
    link writes to."""

    def send(self, data: bytes) -> bool: ...
    def put_patch(self, values: npt.NDArray[np.float64], arrival: float, layer: int = 0) -> None: ...


class Engine(ABC):
    """A sound engine behind the common address space.

    Notes go to the engine that is heard.  By default they are plain commands to the synth
    (its voices are allocated on the audio side); an engine that computes per-note frames on
    the control side (the timbre engine) overrides the note methods and asks for :meth:`tick`.
    """

    name: ClassVar[str]
    link: SynthLink
    #: Seconds between calls to :meth:`tick` while the engine is heard; None: no ticks.
    tick_period: float | None = None
    #: Whether this engine is the one heard (the app keeps it current; see App._route).
    heard: bool = True
    #: What this engine's names name, for a /fail sent when the other engine is heard.
    item: ClassVar[str] = "item"
    #: Whether each finger's note (``/touch``) sounds at its own map point. False: the engine has one
    #: point per layer, and a finger plays a key while the app moves the layer's point with it.
    touch_points: ClassVar[bool] = False

    def __init__(self) -> None:
        #: Keys held through the default note path: the control side's view, which the audio side
        #: is reconciled with (see :meth:`held`).
        self._keys: set[int] = set()
        #: Fingers' keys by their token (the default touch path): a key sounds while any holds it.
        self._touch_keys: dict[int, int] = {}
        #: Called when the state changed after its handler returned (a decode that landed later), so
        #: that subscribers hear it; set by the App.
        self.on_change: Callable[[], None] | None = None

    @abstractmethod
    def handlers(self) -> dict[str, Handler]:
        """Address -> handler for the addresses this engine serves."""

    @abstractmethod
    def snapshot(self) -> dict[str, Any]:
        """The engine's state as plain data (persisted, and broadcast later on)."""

    @abstractmethod
    def state_messages(self) -> list[Reply]:
        """The engine's state as the messages that would set it (a subscriber's snapshot)."""

    @abstractmethod
    def restore(self, state: Mapping[str, Any]) -> None:
        """Take back a snapshot; unknown or stale entries are ignored with a log line."""

    @abstractmethod
    def activate(self, arrival: float) -> None:
        """Send the current sound to the synth (on start and when the engine is selected)."""

    def knows(self, name: str) -> bool:
        """Whether ``name`` names one of this engine's items (a preset, an instrument)."""
        return False

    def flush(self) -> None:  # noqa: B027 - optional hook, nothing to do by default
        """Carry out deferred work now (when the engine asked for it, and before each offline block)."""

    def note(self, pitch: int, velocity: int, arrival: float) -> None:
        """Start (velocity > 0) or release a note; HandlerError when a note-on cannot be queued.

        A release is never refused (the link keeps it until the audio side has room).
        """
        self._send(C.note(pitch, velocity, arrival), "/note")
        if velocity > 0:
            self._keys.add(pitch)
        else:
            self._keys.discard(pitch)

    def touch(self, token: int, pitch: int, velocity: int, xy: tuple[float, float], arrival: float) -> None:
        """A finger's note (``/touch``), ``token`` naming it until :meth:`touch_off`.

        By default a finger holds a key: a key two fingers hold sounds once, until both lifted.
        HandlerError when the note-on cannot be queued.
        """
        if pitch not in self._touch_keys.values():
            self.note(pitch, velocity, arrival)
        self._touch_keys[token] = pitch

    def touch_move(self, token: int, xy: tuple[float, float], arrival: float) -> None:  # noqa: B027
        """A finger moved (only called where :attr:`touch_points`; else the layer's point moves)."""

    def touch_off(self, token: int, arrival: float) -> None:
        """A finger lifted: its note is released (never refused)."""
        pitch = self._touch_keys.pop(token, None)
        if pitch is not None and pitch not in self._touch_keys.values():
            self.note(pitch, 0, arrival)

    def held(self) -> list[int]:
        """What this engine believes sounds: keys (notes on the synth's voices) or voice slots.

        The audio side releases any voice of this engine that is not in the list (``HELD``).
        """
        return sorted(self._keys)

    def pitch(self, midi: float, arrival: float) -> None:
        """Glide the most recent note."""
        self._send(C.pitch(midi, arrival), "/pitch")

    def panic(self, arrival: float) -> None:
        """Release every note at once."""
        self._send(C.simple(C.Kind.PANIC, arrival), "/panic")
        self._keys.clear()
        self._touch_keys.clear()

    def blend(self, points: Sequence[tuple[float, float]], ctx: Context) -> list[Reply]:
        """Sound the mean of these map points' latent codes (``sessions.collision: blend``).

        The default suits a map that is affine in the latent (the patch engine's): the mean point's
        code is then the mean of the codes, so it is moved to like any ``/latent``.
        """
        x = sum(p[0] for p in points) / len(points)
        y = sum(p[1] for p in points) / len(points)
        return self.handlers()["/latent"]((x, y), ctx)

    def cut(self, pitches: Iterable[int], arrival: float) -> None:
        """Silence these notes at once, as :meth:`panic` does for all (one client's ``/panic``)."""
        keys = sorted(set(pitches))
        for p in keys:
            self.note(p, 0, arrival)
        self._send(C.cut(self.name, keys, arrival), "/panic")

    def tick(self, now: float) -> None:  # noqa: B027 - optional hook, nothing to do by default
        """Periodic work while heard (every :attr:`tick_period` seconds)."""

    def deactivate(self, arrival: float) -> None:
        """Another engine is selected: release this engine's notes."""
        self.panic(arrival)

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    def _send(self, data: bytes, what: str) -> None:
        if not self.link.send(data):
            raise HandlerError(f"{what}: the audio command queue is full; message dropped")
