"""Feedback: what changed on a layer, sent to the clients that subscribed to it (``/notify 1``).

Changes are *coalesced per subscriber*: each change is kept under a key (its address, plus the
argument that names what it sets: ``/param cutoff``, ``/z 3``, ``/cursor 7``) in the subscriber's
pending table, and the table is sent at most ``rate`` times a second. A flood of moves therefore
never becomes a flood of replies, and the last value of every key always arrives. A subscriber's
pending table holds at most one entry per key, so its size is bounded by the address space (and the
client count, for cursors), whatever is sent.

Nothing is sent from inside a request: :meth:`publish` only marks changes pending and asks to be
woken (``wake``); :meth:`flush` sends, from a timer, so feedback is never charged to the reply
budget of the packet that caused it. A subscriber does not receive the changes it made itself (a
fader being dragged must not be pulled back by its own echo), except where the layer sounds
something else than it sent (``echo=True``).

Cursors (``/cursor ID ...``, every other player's point) grow as N² with the players, so they
have a budget of their own per subscriber (``cursor_budget`` messages a second): with few players
each cursor goes out at the feedback rate, with many at a rate that keeps each subscriber's
cursors within the budget (the newest position of each always arrives, later). A subscriber that
draws no cursors asks for none (``/notify 1 0``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from timbrespace.session.clients import Client, ClientKey

Reply = tuple[str, tuple[Any, ...]]
FeedbackKey = tuple[Any, ...]

#: Subscriptions over UDP end this long (seconds) after the last ``/notify 1`` unless renewed.
UDP_SUBSCRIPTION_S = 60.0
#: The key's first element that marks a cursor (see the module doc).
CURSOR = "/cursor"
#: Cursor messages per second per subscriber at most, by default.
CURSOR_BUDGET = 300.0
#: A tick's fan-out holds the event loop; past this (seconds) every message queued behind it waits
#: a noticeable share of an audio block, so such ticks are counted (``/status/feedback`` slow_ticks).
TICK_BUDGET_S = 0.001


@dataclass(eq=False)
class _Subscriber:
    client: Client
    next_send: float = 0.0
    pending: dict[FeedbackKey, Reply] = field(default_factory=dict)
    #: Whether it receives cursors, the ones waiting, and when the next may go.
    wants_cursors: bool = True
    cursors: dict[FeedbackKey, Reply] = field(default_factory=dict)
    next_cursors: float = 0.0

    def take(self, key: FeedbackKey, message: Reply) -> bool:
        """Keep ``message`` as the newest for ``key``; whether it replaced one not sent yet."""
        table = self.cursors if key and key[0] == CURSOR else self.pending
        if table is self.cursors and not self.wants_cursors:
            return False
        replaced = key in table
        table[key] = message
        return replaced


class Feedback:
    """Subscriptions per layer and their coalesced, rate-limited streams of changes."""

    def __init__(
        self,
        send: Callable[[Client, list[Reply]], None] | None = None,
        *,
        rate: float = 30.0,
        udp_period: float = UDP_SUBSCRIPTION_S,
        cursor_budget: float = CURSOR_BUDGET,
    ) -> None:
        #: Sends a flush's messages to a client (where its replies go: /reply/port applies), in bundles.
        self.send = send
        self.rate = rate
        self.udp_period = udp_period
        self.cursor_budget = cursor_budget
        #: Asks to be flushed at a time (monotonic seconds); the server arms one timer.
        self.wake: Callable[[float], None] | None = None
        #: A layer's whole state, keyed (see the module doc); compared at each flush to find what changed.
        self.state_of: Callable[[int], dict[FeedbackKey, Reply]] = lambda layer: {}
        self._subs: dict[ClientKey, _Subscriber] = {}
        self._last: dict[int, dict[FeedbackKey, Reply]] = {}  # per layer: the state last compared
        self._dirty: dict[int, dict[FeedbackKey, Client]] = {}  # per layer: key -> who changed it last
        self.sent = 0  # messages sent in all
        self.coalesced = 0  # changes replaced by a newer one before they were sent
        #: Flushes that sent to at least one subscriber (ticks), the time they took (wall seconds,
        #: all of it: comparing the layer, encoding, sending) and how many took over TICK_BUDGET_S.
        self.ticks = 0
        self.tick_s = 0.0
        self.slow_ticks = 0

    # -- subscriptions ------------------------------------------------------------------------------
    def subscribe(self, client: Client, now: float, snapshot: Iterable[tuple[FeedbackKey, Reply]],
                  cursors: bool | None = None) -> None:
        """Subscribe (or renew) ``client``; the layer's whole state is sent first. ``cursors``:
        whether it receives the other players' points (None: as before; a new subscriber does)."""
        client.notify_until = float("inf") if client.peer.protocol == "tcp" else now + self.udp_period
        sub = self._subs.get(client.key)
        if sub is None:
            sub = self._subs[client.key] = _Subscriber(client)
        if cursors is not None:
            sub.wants_cursors = cursors
            if not cursors:
                sub.cursors.clear()
        for key, message in snapshot:
            sub.take(key, message)
        self._arm(sub, now)

    def unsubscribe(self, client: Client) -> bool:
        """End ``client``'s subscription; whether it had one."""
        client.notify_until = 0.0
        return self._subs.pop(client.key, None) is not None

    def subscribed(self, client: Client) -> bool:
        """Whether ``client`` receives feedback."""
        return client.key in self._subs

    def __len__(self) -> int:
        return len(self._subs)

    # -- changes ------------------------------------------------------------------------------------
    def changed(self, layer: int, key: FeedbackKey, author: Client, now: float) -> None:
        """``author`` changed what ``layer`` sounds (under ``key``); compared and sent at the next flush.

        The layer's state is compared, not the message echoed, so that what a change moved besides
        (a preset load moves the point and every parameter) arrives too, and a flood costs one
        comparison per flush, not per message.
        """
        self._dirty.setdefault(layer, {})[key] = author
        if self.wake is not None:
            self.wake(now)

    def touch(self, layer: int, now: float) -> None:
        """``layer``'s state changed on its own (a decode landed): compared and sent at the next flush."""
        if self._subs:
            self._dirty.setdefault(layer, {})
            if self.wake is not None:
                self.wake(now)

    def snapshot(self, layer: int) -> dict[FeedbackKey, Reply]:
        """The state a new subscriber of ``layer`` receives first."""
        state = self.state_of(layer)
        self._last[layer] = state
        return state

    def _collect(self, layer: int, now: float) -> None:
        authors = self._dirty.pop(layer, {})
        state = self.state_of(layer)
        last = self._last.get(layer, {})
        changed = [(k, v) for k, v in state.items() if last.get(k) != v]
        self._last[layer] = state
        for k, v in changed:
            author = authors.get(k)
            self.publish(layer, k, v, now, source=author)

    def publish(self, layer: int, key: FeedbackKey, message: Reply, now: float, *,
                source: Client | None = None, echo: bool = False) -> None:
        """A change on ``layer``: every subscriber of it gets ``message`` (the newest per ``key``)."""
        for sub in self._subs.values():
            c = sub.client
            if c.layer != layer or (c is source and not echo):
                continue
            self.coalesced += sub.take(key, message)
            self._arm(sub, now)

    def publish_all(self, key: FeedbackKey, message: Reply, now: float) -> None:
        """A change every subscriber sees, whatever its layer (joins and leaves)."""
        for sub in self._subs.values():
            sub.take(key, message)
            self._arm(sub, now)

    def flush(self, now: float) -> None:
        """Send what is due; expired UDP subscriptions end here."""
        t0 = time.perf_counter()
        sent_to = 0
        for layer in list(self._dirty):
            self._collect(layer, now)
        send = self.send
        soonest = float("inf")
        for key, sub in list(self._subs.items()):
            if sub.client.notify_until <= now:
                del self._subs[key]
                continue
            if not sub.pending and not sub.cursors:
                continue
            if sub.next_send > now:
                soonest = min(soonest, sub.next_send)
                continue
            messages = list(sub.pending.values())
            sub.pending = {}
            if sub.cursors:
                if sub.next_cursors <= now:
                    messages += sub.cursors.values()
                    # Within the budget: n cursors now, the next ones n / budget seconds later.
                    sub.next_cursors = now + len(sub.cursors) / self.cursor_budget
                    sub.cursors = {}
                else:
                    soonest = min(soonest, sub.next_cursors)
            if not messages:
                continue
            # On a shared grid: subscribers that are due together are flushed together.
            sub.next_send = (math.floor(now * self.rate) + 1.0) / self.rate
            if send is not None:
                send(sub.client, messages)
                self.sent += len(messages)
                sent_to += 1
        if sent_to:
            took = time.perf_counter() - t0
            self.ticks += 1
            self.tick_s += took
            self.slow_ticks += took > TICK_BUDGET_S
        if soonest < float("inf") and self.wake is not None:
            self.wake(soonest)

    def report(self) -> tuple[Any, ...]:
        """``/status/feedback.reply``'s key value pairs: subscribers and the fan-out's counters."""
        return ("subscribers", len(self._subs), "ticks", self.ticks, "tick_ms", self.tick_s * 1000.0,
                "slow_ticks", self.slow_ticks, "sent", self.sent, "coalesced", self.coalesced)

    def _arm(self, sub: _Subscriber, now: float) -> None:
        if self.wake is not None:
            due = sub.next_send if sub.pending else max(sub.next_send, sub.next_cursors)
            self.wake(max(due, now))
