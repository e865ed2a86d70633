"""One layer: a whole instrument of its own (every engine, the one heard, its map point's policy).

A server runs ``layers`` of them (config ``layers``), mixed in the audio process. Clients play
layer 0 together until they choose another (``/layer N``); a live coder drives several at once
with ``/layer/N/<address>``. Everything a layer sounds lives in its engines, which know their
layer only through their link; this class keeps which engine is heard and which handler serves
each address on this layer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from timbrespace.engines.base import Engine, Handler, HandlerError, Reply, SynthLink
from timbrespace.engines.registry import SPECS
from timbrespace.link import commands as C
from timbrespace.link.layers import LayerSound
from timbrespace.protocol import addresses
from timbrespace.protocol.declaration import Value, show
from timbrespace.session.collision import POLICIES, Collision
from timbrespace.session.context import Context
from timbrespace.session.feedback import FeedbackKey

#: Why an optional engine may be missing, for the /fail that names it.
NOT_RUNNING = {s.name: s.missing for s in SPECS if s.missing}
#: How many leading arguments name what an address sets (its feedback key), where any do.
_KEY_ARGS = {a.path: a.feedback_key for a in addresses.ADDRESSES if a.feedback_key}


class Layer:
    """The engines of layer ``index``, the one heard, and the handlers that serve it."""

    def __init__(self, index: int, engines: Sequence[Engine], link: SynthLink, collision: Collision,
                 heard: str | None = None, sound: LayerSound | None = None) -> None:
        self.index = index
        self.engines: dict[str, Engine] = {e.name: e for e in engines}
        self.engine = self.engines.get(heard or "", engines[0])
        #: The audio link as this layer's commands take it (the ENGINE command names the layer).
        self.link = link
        self.collision = collision
        #: Its gain and pan in the mix, as the audio process was last told.
        self.sound = sound or LayerSound()
        self.table: dict[str, Handler] = {}

    def route(self, own: Mapping[str, Handler], wrap: Callable[[Layer, Handler], Handler]) -> dict[str, Handler]:
        """Address -> handler: the heard engine's where it has one, else the engine that has one,
        then the server's own (``own``). ``wrap`` decorates ``/latent`` (the sender's cursor).

        Addresses only one engine serves (/patch/*, /corners) always reach it, heard or not,
        so a patch can be prepared while the other engine plays.
        """
        table: dict[str, Handler] = {}
        for e in self.engines.values():
            e.heard = e is self.engine
            if e is not self.engine:
                table.update(e.handlers())
        table.update(self.engine.handlers())
        if "/latent" in table:
            table["/latent"] = wrap(self, table["/latent"])
        table.update({"/mix/gain": self._gain, "/mix/pan": self._pan, "/collision": self._collision})
        table.update(own)
        self.table = table
        return table

    def select(self, name: str, arrival: float) -> Engine | None:
        """Make engine ``name`` the one heard: the other's notes are released. The engine it replaced,
        or None when ``name`` was already heard."""
        engine = self.engines.get(name)
        if engine is None:
            have = ", ".join(self.engines)
            raise HandlerError(f"/engine: the {name!r} engine is not running on this server (running: {have})"
                               + (f"; {NOT_RUNNING[name]}" if name in NOT_RUNNING else ""))
        if engine is self.engine:
            return None
        if not self.link.send(C.with_layer(C.engine(name, arrival), self.index)):
            raise HandlerError("/engine: the audio command queue is full; message dropped")
        old = self.engine
        old.flush()
        old.deactivate(arrival)
        self.engine = engine
        engine.activate(arrival)
        return old

    def explain(self, path: str, args: tuple[Value, ...]) -> HandlerError | None:
        """A clearer reason when a name the heard engine refused is one the other engine knows.

        A client written for the patch engine sends preset names; if the layer was left on the
        timbre engine, "unknown instrument" would send its user looking in the wrong place.
        """
        decl = addresses.BY_PATH[path]
        if decl.engine is not None or not decl.args or decl.args[0].kind != "ref" or not isinstance(args[0], str):
            return None
        for e in self.engines.values():
            if e is not self.engine and e.knows(args[0]):
                return HandlerError(f"{path}: the {self.engine.name} engine is heard; {show(args[0])} "
                                    f"names a {e.item}: send /engine {e.name} first")
        return None

    # -- the layer's own settings (admin only: see the address declaration) -------------------
    def _gain(self, args: tuple[Value, ...], ctx: Context) -> list[Reply]:
        self.place(LayerSound(float(args[0]), self.sound.pan), ctx.arrival)
        return []

    def _pan(self, args: tuple[Value, ...], ctx: Context) -> list[Reply]:
        self.place(LayerSound(self.sound.gain, float(args[0])), ctx.arrival)
        return []

    def place(self, sound: LayerSound, arrival: float = 0.0) -> None:
        """Move the layer to ``sound``'s gain and pan in the mix."""
        if not self.link.send(C.with_layer(C.mix(sound.gain, sound.pan, arrival), self.index)):
            raise HandlerError("/mix: the audio command queue is full; message dropped")
        self.sound = sound

    def _collision(self, args: tuple[Value, ...], ctx: Context) -> list[Reply]:
        policy = str(args[0])
        assert policy in POLICIES  # the declaration checked it
        self.collision = Collision(policy, float(args[1]))
        return []

    def state(self) -> dict[FeedbackKey, Reply]:
        """What this layer sounds, keyed: its place in the mix, its collision policy, the engine
        heard, its state, the other engines' own."""
        state: dict[FeedbackKey, Reply] = {
            ("/mix/gain",): ("/mix/gain", (self.sound.gain,)),
            ("/mix/pan",): ("/mix/pan", (self.sound.pan,)),
            ("/collision",): ("/collision", (self.collision.policy, self.collision.hold)),
            ("/engine",): ("/engine", (self.engine.name,)),
        }
        heard = self.engine.handlers()
        key_args = _KEY_ARGS
        for e in [*(e for e in self.engines.values() if e is not self.engine), self.engine]:
            for address, args in e.state_messages():
                if e is not self.engine and address in heard:
                    continue
                n = key_args.get(address, 0)
                state[(address, *args[:n]) if n else (address,)] = (address, tuple(args))
        return state

    def snapshot(self) -> dict[str, Any]:
        """Plain data for the state file: each engine's snapshot, the engine heard, the layer's
        place in the mix and its collision policy."""
        return {"engines": {name: e.snapshot() for name, e in self.engines.items()}, "active": self.engine.name,
                "mix": {"gain": self.sound.gain, "pan": self.sound.pan},
                "collision": {"policy": self.collision.policy, "hold": self.collision.hold}}
