"""Fingers on the map (``/touch ID x y``, ``/touch/off ID``): each finger a voice of its own.

A finger belongs to the client that put it down, like a note: it is lifted when that client lifts
it, sends ``/panic``, or leaves (``/bye``, its connection closed, silence), and when its engine
stops being heard on its layer. A client holds at most :data:`MAX_TOUCHES` fingers at once.

Where a finger sounds depends on what its engine can do (``Engine.touch_points``):

- the timbre engine decodes every sounding note once per control tick in one batch, so each
  finger's note is decoded at its own map point there;
- the patch engine has one patch per layer (one mailbox, one amSynth voice bank): a finger plays
  its key, and moves the layer's point exactly as ``/latent`` from its client would (its cursor,
  the layer's collision policy, feedback), so the last finger moved sets the patch every voice
  sounds. A patch per voice would need the audio process to hold and apply a patch per voice.

Every finger is shown to the layer's other subscribers as ``/cursor/touch ID NAME TOUCH x y down``
(in the cursor feed, so within its budget; the last position and the lift always arrive).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

from timbrespace.engines.base import Handler, HandlerError, Reply
from timbrespace.layer import Layer
from timbrespace.protocol.declaration import Value
from timbrespace.session.clients import MAX_TOUCHES, Client, Sessions, Touch
from timbrespace.session.context import Context
from timbrespace.session.feedback import CURSOR, Feedback, FeedbackKey

#: The address others receive a finger under (declared in ``protocol.addresses.SERVER_REPLIES``).
TOUCH_CURSOR = "/cursor/touch"


def cursor(c: Client, tid: int, t: Touch, down: bool) -> tuple[FeedbackKey, Reply]:
    """The cursor feed's key and message for finger ``tid`` of ``c``."""
    return (CURSOR, c.id, tid), (TOUCH_CURSOR, (c.id, c.label, tid, *t.point, int(down)))


class Touches:
    """Serves ``/touch`` and ``/touch/off``; lifts fingers when their owner or their engine goes."""

    def __init__(self, layers: Sequence[Layer], sessions: Sessions, feedback: Feedback,
                 clock: Callable[[], float]) -> None:
        self.layers = layers
        self.sessions = sessions
        self.feedback = feedback
        self.clock = clock
        self._tokens = itertools.count(1)

    def handlers(self) -> dict[str, Handler]:
        """Address -> handler."""
        return {"/touch": self._touch, "/touch/off": self._off}

    def _touch(self, args: tuple[Value, ...], ctx: Context) -> list[Reply]:
        tid, xy = int(args[0]), (float(args[1]), float(args[2]))
        c = ctx.client
        t = c.touches.get(tid)
        if t is not None and t.layer != ctx.layer:
            raise HandlerError(f"/touch: finger {tid} is down on layer {t.layer}; lift it (/touch/off {tid}) "
                               "or use another id")
        layer = self.layers[ctx.layer]
        held: HandlerError | None = None
        if t is None:
            if len(c.touches) >= MAX_TOUCHES:
                raise HandlerError(f"/touch: {MAX_TOUCHES} fingers are down already (the most a client holds); "
                                   f"lift one first (/touch/off {' '.join(map(str, sorted(c.touches)))})")
            self.sessions.join(c)  # an owner has something to lose: refused when the session is full
            engine = layer.engine
            if not engine.touch_points:
                held = self._move(layer, xy, ctx)  # the patch the note starts with
            engine.flush()
            t = Touch(layer.index, engine.name, next(self._tokens), xy)
            engine.touch(t.token, int(args[3]), int(args[4]), xy, ctx.arrival)
            c.touches[tid] = t
        else:
            t.point = xy
            engine = layer.engines[t.engine]
            if engine.touch_points:
                engine.touch_move(t.token, xy, ctx.arrival)
            else:
                held = self._move(layer, xy, ctx)
        self._show(c, tid, t, True, ctx.arrival)
        if held is not None:
            raise held  # the finger sounds, at the point its holder keeps (sessions.collision lock)
        return []

    def _move(self, layer: Layer, xy: tuple[float, float], ctx: Context) -> HandlerError | None:
        """Move the layer's point as the sender's /latent would; the refusal, if the point is held."""
        try:
            layer.table["/latent"](xy, ctx)
        except HandlerError as e:
            return HandlerError(str(e).replace("/latent", "/touch", 1))
        if len(self.feedback):
            self.feedback.changed(layer.index, ("/latent",), ctx.client, ctx.arrival)
        return None

    def _off(self, args: tuple[Value, ...], ctx: Context) -> list[Reply]:
        tid = int(args[0])
        c = ctx.client
        t = c.touches.pop(tid, None)
        if t is None:
            down = " ".join(map(str, sorted(c.touches))) or "none"
            raise HandlerError(f"/touch/off: finger {tid} is not down (this client's fingers down: {down})")
        self._lift(c, tid, t, ctx.arrival)
        self.sessions.settle(c)
        return []

    def _lift(self, c: Client, tid: int, t: Touch, arrival: float) -> None:
        self.layers[t.layer].engines[t.engine].touch_off(t.token, arrival)
        self._show(c, tid, t, False, arrival)

    def _show(self, c: Client, tid: int, t: Touch, down: bool, arrival: float) -> None:
        if len(self.feedback):
            key, message = cursor(c, tid, t, down)
            self.feedback.publish(t.layer, key, message, arrival, source=c)

    def release(self, c: Client, arrival: float) -> None:
        """Lift every finger ``c`` holds (it leaves, or sent ``/panic``); never refused."""
        for tid, t in sorted(c.touches.items()):
            self._lift(c, tid, t, arrival)
        c.touches.clear()

    def disown(self, layer: int, engine: str) -> None:
        """``engine``'s notes on ``layer`` were released as a whole: nobody's fingers sound there any more."""
        now = self.clock()
        for c in self.sessions.members():
            gone = [(tid, t) for tid, t in c.touches.items() if (t.layer, t.engine) == (layer, engine)]
            for tid, t in gone:
                del c.touches[tid]
                self._show(c, tid, t, False, now)
            if gone:
                self.sessions.settle(c)

    def snapshot(self, c: Client) -> dict[FeedbackKey, Reply]:
        """The fingers down on ``c``'s layer, of everyone else (a new subscriber's first messages)."""
        out: dict[FeedbackKey, Reply] = {}
        for other in self.sessions.members():
            if other is not c:
                for tid, t in other.touches.items():
                    if t.layer == c.layer:
                        key, message = cursor(other, tid, t, True)
                        out[key] = message
        return out
