"""Feedback subscriptions: ``/notify`` (a client's layer, then every change), ``/watch`` (other
layers too) and ``/status/feedback``; and the snapshot a new subscriber receives first."""

from __future__ import annotations

from collections.abc import Sequence

from timbrespace.engines.base import Handler, HandlerError, Reply
from timbrespace.layer import Layer
from timbrespace.protocol.declaration import Value
from timbrespace.session.clients import Client, Sessions
from timbrespace.session.context import Context
from timbrespace.session.feedback import Feedback, FeedbackKey
from timbrespace.touches import Touches


class Subscriptions:
    """Serves the feedback's subscription addresses over the layers, sessions and fingers given."""

    def __init__(self, layers: Sequence[Layer], sessions: Sessions, feedback: Feedback, touches: Touches) -> None:
        self.layers = layers
        self.sessions = sessions
        self.feedback = feedback
        self.touches = touches

    def handlers(self) -> dict[str, Handler]:
        """Address -> handler."""
        return {"/notify": self._notify, "/watch": self._watch, "/status/feedback": self._feedback_status}

    def _notify(self, args: tuple[Value, ...], ctx: Context) -> list[Reply]:
        c = ctx.client
        if not args[0]:
            self.feedback.unsubscribe(c)
            return [("/done", ("/notify", c.id))]
        if not c.proved:
            raise HandlerError("/notify 1: feedback goes only to clients that proved their address: send "
                               "/hello NAME first, or connect over TCP")
        self.sessions.join(c)
        cursors = bool(args[1])
        if self.feedback.subscribed(c):  # a renewal (UDP): the stream goes on, no second snapshot
            self.feedback.subscribe(c, ctx.arrival, (), cursors)
            return [("/done", ("/notify", c.id))]
        self.feedback.subscribe(c, ctx.arrival, self.snapshot_for(c).items(), cursors)
        return [("/done", ("/notify", c.id))]

    def _watch(self, args: tuple[Value, ...], ctx: Context) -> list[Reply]:
        layer, on = int(args[0]), bool(args[1])
        if layer >= len(self.layers):
            raise HandlerError(f"/watch: layer {layer} is out of range 0..{len(self.layers) - 1} (this server's "
                               "layers)")
        if not self.feedback.watch(ctx.client, layer, on, ctx.arrival):
            raise HandlerError("/watch: not subscribed; send /notify 1 first")
        return [("/done", ("/watch", layer))]

    def snapshot_for(self, c: Client) -> dict[FeedbackKey, Reply]:
        """What a subscriber receives first: its layer's state, who plays, the cursors on its layer."""
        snapshot = dict(self.feedback.snapshot(c.layer))
        for other in self.sessions.members():
            snapshot[("/clients", other.id)] = ("/clients", ("joined", other.id, other.label, other.layer))
            if other is not c and other.point is not None and other.layer == c.layer:
                snapshot[("/cursor", other.id)] = ("/cursor", (other.id, other.label, *other.point))
        snapshot.update(self.touches.snapshot(c))
        return snapshot

    def _feedback_status(self, args: tuple[Value, ...], ctx: Context) -> list[Reply]:
        return [("/status/feedback.reply", self.feedback.report())]
