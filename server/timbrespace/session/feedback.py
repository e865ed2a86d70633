"""Feedback: what changed on a layer, sent to the clients that subscribed to it (``/notify 1``).

Changes are *coalesced*: each is kept under a key (its address, plus the argument that names what
it sets: ``/param cutoff``, ``/z 3``, ``/cursor 7``) and a subscriber is sent at most ``rate``
times a second what changed since it was last sent, the newest value of each key. A flood of moves
therefore never becomes a flood of replies, and the last value of every key always arrives.

The changes of a layer are kept once, in a *feed* (key -> the newest message, numbered in order),
not once per subscriber: a change costs the same whether one client or two hundred follow the
layer, and a subscriber only remembers how far into each feed it has been sent. Subscribers due at
the same tick (they share one grid) that have been sent as far, and made none of the changes
themselves, receive the same messages: those are encoded once and the same packets go to each
(``send_many``). A subscriber does not receive the changes it made itself (a fader being dragged
must not be pulled back by its own echo), except where the layer sounds something else than it
sent (``echo=True``): it gets a copy of its own.

Nothing is sent from inside a request: changes only ask to be woken (``wake``); :meth:`flush`
sends, from a timer, so feedback is never charged to the reply budget of the packet that caused it.

Cursors (``/cursor ID ...``, every other player's point) grow as N² with the players, so they
have a budget per subscriber (``cursor_budget`` messages a second): with few players each cursor
goes out at the feedback rate, with many at a rate that keeps each subscriber's cursors within the
budget (the newest position of each always arrives, later). The cursors are dealt into slices
by client id and each tick sends one slice to every subscriber: a tick encodes a slice's
cursors once for everyone, where sending every cursor to a cohort of subscribers in turn would
encode all of them every tick. A subscriber that draws no cursors asks for none (``/notify 1 0``).
The cursor and join/leave feeds keep at most :data:`FEED_KEYS` keys (a cursor whose client left is
dropped; past the cap the oldest go).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection, Iterable
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


#: The first element of a watched layer's key in a subscriber's first messages (see :meth:`Feedback.watch`).
WATCHED = "/watch"


def watched(layer: int, message: Reply) -> Reply:
    """``message`` as a watcher of ``layer`` receives it: its address under ``/layer/N``."""
    return (f"/layer/{layer}{message[0]}", message[1])


#: Keys a cursor feed or the join/leave feed keeps at most (see the module doc).
FEED_KEYS = 4096

Deliver = Callable[[list[Reply], list[Client], list[tuple[Client, Collection[int]]]], None]
"""Sends ``messages`` to every client of ``shared``, and to each ``(client, skip)`` of ``personal``
all but the messages at the indices in ``skip`` (the changes it made itself)."""

#: One change in a feed: its number, the message, who made it (None: the server) and whether its
#: author receives it too.
_Entry = tuple[int, Reply, "Client | None", bool]


class _Feed:
    """One stream of coalesced changes: key -> the newest entry, in the order they were made."""

    def __init__(self, cap: int | None = None) -> None:
        self.seq = 0
        self.cap = cap
        self.entries: dict[FeedbackKey, _Entry] = {}
        #: ``seq`` when the feed was last flushed: a change replacing a newer one was never sent.
        self.flushed = 0

    def put(self, key: FeedbackKey, message: Reply, author: Client | None, echo: bool) -> bool:
        """Keep ``message`` as the newest for ``key``; whether it replaced one not flushed yet."""
        self.seq += 1
        old = self.entries.pop(key, None)
        self.entries[key] = (self.seq, message, author, echo)
        if self.cap is not None and len(self.entries) > self.cap:
            del self.entries[next(iter(self.entries))]  # the oldest: sent long ago to everyone
        return old is not None and old[0] > self.flushed

    def since(self, seen: int) -> list[_Entry]:
        """The entries made after number ``seen``, oldest first."""
        out = []
        for entry in reversed(self.entries.values()):  # newest first: stop at the first one seen
            if entry[0] <= seen:
                break
            out.append(entry)
        out.reverse()
        return out

    def drop(self, key: FeedbackKey) -> None:
        """Forget ``key`` (its client left)."""
        self.entries.pop(key, None)


@dataclass(eq=False, slots=True)
class _Subscriber:
    client: Client
    layer: int
    #: How far into its layer's feed and the join/leave feed it has been sent.
    seen: int = 0
    seen_clients: int = 0
    #: How far into its layer's cursor feed each slice of the cursors has been sent (see the module doc).
    seen_cursors: list[int] = field(default_factory=lambda: [0])
    next_send: float = 0.0
    #: The messages it receives first (its snapshot), before any change.
    first: dict[FeedbackKey, Reply] = field(default_factory=dict)
    #: Whether it receives cursors.
    wants_cursors: bool = True
    #: Other layers it watches (``/watch N``): layer -> how far into that layer's feed it was sent.
    watched: dict[int, int] = field(default_factory=dict)


class Feedback:
    """Subscriptions per layer and their coalesced, rate-limited streams of changes."""

    def __init__(
        self,
        send: Callable[[Client, list[Reply]], None] | None = None,
        *,
        rate: float = 30.0,
        udp_period: float = UDP_SUBSCRIPTION_S,
        cursor_budget: float = CURSOR_BUDGET,
        deliver: Deliver | None = None,
        flushed: Callable[[], None] | None = None,
    ) -> None:
        #: Sends a flush's messages to a client (where its replies go: /reply/port applies), in bundles.
        self.send = send
        #: Sends one group's messages, encoded once (see :data:`Deliver`); default: ``send`` to each.
        self.deliver = deliver
        #: Called after each flush that delivered (the delivery forgets that flush's encodings).
        self.flushed = flushed
        self.rate = rate
        self.udp_period = udp_period
        self.cursor_budget = cursor_budget
        #: Asks to be flushed at a time (monotonic seconds); the server arms one timer.
        self.wake: Callable[[float], None] | None = None
        #: A layer's whole state, keyed (see the module doc); compared at each flush to find what changed.
        self.state_of: Callable[[int], dict[FeedbackKey, Reply]] = lambda layer: {}
        self._subs: dict[ClientKey, _Subscriber] = {}
        self._feeds: dict[int, _Feed] = {}  # per layer: its state's changes
        self._cursors: dict[int, _Feed] = {}  # per layer: its players' points
        self._clients = _Feed(FEED_KEYS)  # joins and leaves, for every subscriber
        self._last: dict[int, dict[FeedbackKey, Reply]] = {}  # per layer: the state last compared
        self._dirty: dict[int, dict[FeedbackKey, Client]] = {}  # per layer: key -> who changed it last
        self._due = 0.0  # the earliest a subscriber may be sent to (the shared grid)
        self.sent = 0  # messages sent in all
        self.coalesced = 0  # changes replaced by a newer one before they were sent
        #: Flushes that sent to at least one subscriber (ticks), the time they took (wall seconds,
        #: all of it: comparing the layer, encoding, sending) and how many took over TICK_BUDGET_S.
        self.ticks = 0
        self.tick_s = 0.0
        self.slow_ticks = 0

    def _feed(self, layer: int) -> _Feed:
        feed = self._feeds.get(layer)
        if feed is None:
            feed = self._feeds[layer] = _Feed()
        return feed

    def _cursor_feed(self, layer: int) -> _Feed:
        feed = self._cursors.get(layer)
        if feed is None:
            feed = self._cursors[layer] = _Feed(FEED_KEYS)
        return feed

    # -- subscriptions ------------------------------------------------------------------------------
    def subscribe(self, client: Client, now: float, snapshot: Iterable[tuple[FeedbackKey, Reply]],
                  cursors: bool | None = None) -> None:
        """Subscribe (or renew) ``client``; ``snapshot`` is sent first. ``cursors``: whether it
        receives the other players' points (None: as before; a new subscriber does)."""
        client.notify_until = float("inf") if client.peer.protocol == "tcp" else now + self.udp_period
        sub = self._subs.get(client.key)
        if sub is None:
            sub = self._subs[client.key] = _Subscriber(client, client.layer, seen_clients=self._clients.seq)
            self._rebase(sub)
        elif sub.layer != client.layer:
            self._rebase(sub)
        if cursors is not None:
            sub.wants_cursors = cursors
        sub.first.update(snapshot)
        if not sub.wants_cursors:
            for key in [k for k in sub.first if k[0] == CURSOR]:
                del sub.first[key]
        self._wake(now)

    def _rebase(self, sub: _Subscriber) -> None:
        """``sub`` follows its client's layer from now on (its snapshot brings it up to date)."""
        sub.layer = sub.client.layer
        sub.seen = self._feed(sub.layer).seq
        sub.seen_cursors = [self._cursor_feed(sub.layer).seq]

    def watch(self, client: Client, layer: int, on: bool, now: float) -> bool:
        """Also send (``on``) or stop sending ``client`` layer ``layer``'s feedback, each address
        under ``/layer/N``, its state first; False when ``client`` has no subscription."""
        sub = self._subs.get(client.key)
        if sub is None:
            return False
        if not on:
            sub.watched.pop(layer, None)
            for key in [k for k in sub.first if k[:2] == (WATCHED, layer)]:
                del sub.first[key]
            return True
        if layer in sub.watched:
            return True
        state = self.snapshot(layer)
        sub.watched[layer] = self._feed(layer).seq
        for key, message in state.items():
            sub.first[(WATCHED, layer, *key)] = watched(layer, message)
        self._wake(now)
        return True

    def unsubscribe(self, client: Client) -> bool:
        """End ``client``'s subscription; whether it had one."""
        client.notify_until = 0.0
        return self._subs.pop(client.key, None) is not None

    def forget(self, client: Client) -> None:
        """``client`` left: its cursor and its fingers' are no longer shown (its leave is published
        by the caller, and tells a subscriber to drop them)."""
        for feed in self._cursors.values():
            for key in [k for k in feed.entries if k[:2] == (CURSOR, client.id)]:
                feed.drop(key)

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
        self._wake(now)

    def touch(self, layer: int, now: float) -> None:
        """``layer``'s state changed on its own (a decode landed): compared and sent at the next flush."""
        if self._subs:
            self._dirty.setdefault(layer, {})
            self._wake(now)

    def snapshot(self, layer: int) -> dict[FeedbackKey, Reply]:
        """The state a new subscriber of ``layer`` receives first (changes not yet compared are
        published to the others first, so that nobody misses them)."""
        if layer in self._dirty:
            self._collect(layer)
        state = self.state_of(layer)
        if layer not in self._last:
            self._last[layer] = state
        return state

    def _collect(self, layer: int) -> None:
        authors = self._dirty.pop(layer, {})
        state = self.state_of(layer)
        last = self._last.get(layer, {})
        self._last[layer] = state
        feed = self._feed(layer)
        for k, v in state.items():
            if last.get(k) != v:
                held = feed.entries.get(k)
                if held is not None and held[1] == v:
                    continue  # published as it is already (a blend's echo to its mover, say)
                self.coalesced += feed.put(k, v, authors.get(k), False)

    def publish(self, layer: int, key: FeedbackKey, message: Reply, now: float, *,
                source: Client | None = None, echo: bool = False) -> None:
        """A change on ``layer``: every subscriber of it gets ``message`` (the newest per ``key``)."""
        feed = self._cursor_feed(layer) if key and key[0] == CURSOR else self._feed(layer)
        self.coalesced += feed.put(key, message, source, echo)
        self._wake(now)

    def publish_all(self, key: FeedbackKey, message: Reply, now: float) -> None:
        """A change every subscriber sees, whatever its layer (joins and leaves)."""
        self.coalesced += self._clients.put(key, message, None, False)
        self._wake(now)

    def _wake(self, now: float) -> None:
        if self.wake is not None and self._subs:
            self.wake(max(self._due, now))

    def flush(self, now: float) -> None:
        """Send what is due; expired UDP subscriptions end here."""
        t0 = time.perf_counter()
        for layer in list(self._dirty):
            self._collect(layer)
        groups: dict[tuple[int, int, int, int], list[_Subscriber]] = {}
        soonest = float("inf")
        clients_seq = self._clients.seq
        tick = math.floor(now * self.rate)
        slices = {layer: self._slice(feed, tick) for layer, feed in self._cursors.items()}
        for key, sub in list(self._subs.items()):
            c = sub.client
            if c.notify_until <= now:
                del self._subs[key]
                continue
            if sub.layer != c.layer:
                self._rebase(sub)
            cursors = -1  # -1: none for it at this flush; else how far its slice was sent
            cut = slices.get(sub.layer) if sub.wants_cursors else None
            if cut is not None:
                period, r, newest = cut
                sent = sub.seen_cursors
                if len(sent) != period:  # the slices were dealt again: each starts where the least sent one was
                    sent = sub.seen_cursors = [min(sent)] * period
                if newest > sent[r]:
                    cursors = sent[r]
                elif self._cursors[sub.layer].seq > min(sent):
                    soonest = min(soonest, (tick + 1) / self.rate)  # another slice's turn
            feed = self._feeds.get(sub.layer)
            if not (sub.first or cursors >= 0 or clients_seq > sub.seen_clients
                    or (feed is not None and feed.seq > sub.seen) or self._watched_due(sub)):
                continue
            if sub.next_send > now:
                soonest = min(soonest, sub.next_send)
                continue
            groups.setdefault((sub.layer, sub.seen, cursors, sub.seen_clients), []).append(sub)
        grid = (math.floor(now * self.rate) + 1.0) / self.rate  # subscribers due together flush together
        sent_to = 0
        for (layer, seen, seen_cursors, seen_clients), subs in groups.items():
            cut = slices.get(layer) if seen_cursors >= 0 else None
            sent_to += self._send_group(layer, seen, seen_cursors, cut, seen_clients, subs, grid)
        for feed in (*self._feeds.values(), *self._cursors.values(), self._clients):
            feed.flushed = feed.seq
        if groups:
            self._due = grid  # a change from now on waits for the grid those just sent to are on
            if self.flushed is not None:
                self.flushed()
        if sent_to:
            took = time.perf_counter() - t0
            self.ticks += 1
            self.tick_s += took
            self.slow_ticks += took > TICK_BUDGET_S
        if soonest < float("inf") and self.wake is not None:
            self.wake(soonest)

    def _slice(self, cfeed: _Feed, tick: int) -> tuple[int, int, int] | None:
        """This tick's slice of a layer's cursors: (slices, the one due, its newest entry's number).

        Within the budget a subscriber is sent at most ``cursor_budget / rate`` cursors a tick, so
        the cursors are dealt by client id into as many slices as that takes, and tick ``t`` sends
        slice ``t mod slices``: each cursor once every ``slices`` ticks, one slice for everyone.
        """
        if not cfeed.entries:
            return None
        period = max(1, math.ceil(len(cfeed.entries) * self.rate / self.cursor_budget))
        r = tick % period
        newest = 0
        for key, entry in cfeed.entries.items():
            if key[1] % period == r and entry[0] > newest:
                newest = entry[0]
        return period, r, newest

    def _send_group(self, layer: int, seen: int, seen_cursors: int, cut: tuple[int, int, int] | None,
                    seen_clients: int, subs: list[_Subscriber], grid: float) -> int:
        """Send one group its changes (shared where it can be), ``cut``'s slice of the cursors
        after number ``seen_cursors`` among them (None: no cursors); the subscribers sent to."""
        feed = self._feed(layer)
        entries = feed.since(seen)
        if cut is not None:
            period, r, _ = cut
            cfeed = self._cursor_feed(layer)
            entries += [e for key, e in cfeed.entries.items() if e[0] > seen_cursors and key[1] % period == r]
        entries += self._clients.since(seen_clients)
        authors: dict[int, list[int]] = {}  # each author's own changes, by their index in entries
        for i, e in enumerate(entries):
            if e[2] is not None and not e[3]:
                authors.setdefault(id(e[2]), []).append(i)
        shared: list[Client] = []
        personal: list[tuple[Client, Collection[int]]] = []
        sent_to = 0
        cursors_seq = self._cursor_feed(layer).seq
        for sub in subs:
            c = sub.client
            if sub.first or sub.watched:  # its snapshot first, then what changed since, then other layers'
                messages = [*sub.first.values(), *(e[1] for e in entries if e[2] is not c or e[3]),
                            *self._watched_changes(sub)]
                sub.first = {}
                if messages:
                    self._send(messages, [c], [])
                    sent_to += 1
            elif id(c) in authors:
                personal.append((c, authors[id(c)]))
            else:
                shared.append(c)
            sub.seen = feed.seq
            sub.seen_clients = self._clients.seq
            if cut is not None:
                sub.seen_cursors[cut[1]] = cursors_seq
            sub.next_send = grid
        if entries and (shared or personal):
            # A personal copy that leaves out everything is no message: its author only.
            personal = [(c, skip) for c, skip in personal if len(skip) < len(entries)]
            self._send([e[1] for e in entries], shared, personal)
            sent_to += len(shared) + len(personal)
        return sent_to

    def _watched_due(self, sub: _Subscriber) -> bool:
        for layer, seen in sub.watched.items():
            feed = self._feeds.get(layer)
            if feed is not None and feed.seq > seen:
                return True
        return False

    def _watched_changes(self, sub: _Subscriber) -> list[Reply]:
        """What changed on the layers ``sub`` watches since it was last sent, under ``/layer/N``
        (its own changes included: they were sent to another address than the one it gets)."""
        out: list[Reply] = []
        for layer, seen in sub.watched.items():
            feed = self._feed(layer)
            out += [watched(layer, e[1]) for e in feed.since(seen)]
            sub.watched[layer] = feed.seq
        return out

    def _send(self, messages: list[Reply], shared: list[Client],
              personal: list[tuple[Client, Collection[int]]]) -> None:
        self.sent += len(messages) * len(shared) + sum(len(messages) - len(skip) for _, skip in personal)
        if self.deliver is not None:
            self.deliver(messages, shared, personal)
        elif self.send is not None:
            for c in shared:
                self.send(c, messages)
            for c, skip in personal:
                self.send(c, [m for i, m in enumerate(messages) if i not in skip])

    def report(self) -> tuple[Any, ...]:
        """``/status/feedback.reply``'s key value pairs: subscribers and the fan-out's counters."""
        return ("subscribers", len(self._subs), "ticks", self.ticks, "tick_ms", self.tick_s * 1000.0,
                "slow_ticks", self.slow_ticks, "sent", self.sent, "coalesced", self.coalesced)
