"""The control side's way into the command socket: a release is never the message dropped.

When the socket to the audio process is full (a note flood, a stalled audio process), a command
that starts sound is refused (the client gets ``/fail``), but one that releases sound is kept in
a small side queue and retried until the socket takes it: otherwise a dropped note-off leaves a
note sounding for good.  The side queue is keyed by what it releases, so it coalesces: at most one
entry per MIDI key, per timbre voice slot, per engine's cut keys, plus one panic, however long the flood.  While it is
not empty every other command is refused, so nothing overtakes a release (a note-on after the
note-off that is still waiting would otherwise be released by it).

The socket is shared by every client, so each has a share of it: while a client's message is
handled (:meth:`Outbox.speaking`), the commands it sends are counted as its own until the audio
side takes them (its ``TAKEN`` counter: the socket is first in, first out), and any command of
it but a release is refused once the client has :data:`SENDER_SHARE` waiting. A client flooding notes
fills its share, not the socket, and everyone else's notes and ``/sync`` still get in.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Callable, Hashable

from timbrespace.link import commands as C

#: Bound on the side queue per layer: 128 keys + 128 slots + two cuts + a panic fit; past it, one
#: panic replaces all of that layer's.
MAX_PENDING = 260

ReleaseKey = tuple[int, int, int]

#: Commands one client may have waiting in the socket (sent, not yet taken by the audio side) at
#: most. The audio side takes 64 a block, so this is two blocks of commands: more from one client
#: is a flood, and the socket (a few hundred commands) keeps room for the others.
SENDER_SHARE = 128
#: Commands counted as waiting at most; past it the count is wrong (the audio side's counter was
#: lost) and starts again from nothing rather than refuse anyone for good.
MAX_TRACKED = 4096


def _release_key(data: bytes) -> ReleaseKey:
    """What a release command releases: (layer, kind, key or slot); a panic is (layer, PANIC, 0)."""
    kind, layer = data[0], data[1]
    if kind in (C.Kind.NOTE, C.Kind.VOICE, C.Kind.CUT):  # a key, a slot, or the engine whose keys are cut
        return layer, kind, struct.unpack_from("<i", data, C.HEADER.size)[0]
    return layer, kind, 0


class Outbox:
    """Sends commands through ``send_raw`` (False when the socket is full), keeping releases.

    ``taken`` (optional) counts the commands the audio side has taken from the socket so far; with
    it, each client's commands are held to its share (see the module doc).
    """

    def __init__(self, send_raw: Callable[[bytes], bool], taken: Callable[[], int] | None = None) -> None:
        self._send_raw = send_raw
        self._taken = taken
        self._pending: dict[ReleaseKey, bytes] = {}
        #: Called when a release had to wait: the owner should call :meth:`pump` soon.
        self.on_pending: Callable[[], None] | None = None
        self.refused = 0  # commands refused (the socket was full or releases waited)
        self.deferred = 0  # releases that had to wait in the side queue
        self.over_share = 0  # starts refused because their client had its share waiting
        self._sender: Hashable | None = None
        self._refused_share = False
        self._senders: deque[Hashable | None] = deque()  # who sent each command in the socket, oldest first
        self._waiting: dict[Hashable, int] = {}  # client -> its commands in the socket
        self._base = taken() if taken is not None else 0  # the audio side's count when the deque was empty

    def speaking(self, sender: Hashable | None) -> None:
        """The commands sent from now on are ``sender``'s (a client's key; None: the server's own)."""
        self._sender = sender
        self._refused_share = False

    def refusal(self) -> str | None:
        """Why the speaking client's last start was refused, when it was its share (else None)."""
        if not self._refused_share:
            return None
        return (f"this client has {SENDER_SHARE} commands waiting for the audio side (its share of the audio "
                "command queue, which all clients share); message dropped: send fewer at once")

    def waiting(self, sender: Hashable) -> int:
        """Commands of ``sender`` in the socket, not yet taken by the audio side."""
        self._settle()
        return self._waiting.get(sender, 0)

    def _settle(self) -> None:
        """Forget the commands the audio side has taken since (the socket keeps their order)."""
        if self._taken is None:
            return
        now = self._taken()
        done = now - self._base
        if done < 0 or len(self._senders) > MAX_TRACKED:  # the audio side's count went back: a new process
            self._forget(now)
            return
        senders, waiting = self._senders, self._waiting
        for _ in range(min(done, len(senders))):
            who = senders.popleft()
            if who is not None:
                left = waiting[who] - 1
                if left:
                    waiting[who] = left
                else:
                    del waiting[who]
        self._base = now if not senders else self._base + done

    def _forget(self, now: int) -> None:
        self._senders.clear()
        self._waiting.clear()
        self._base = now

    def _sent(self) -> None:
        who = self._sender
        if self._taken is None:
            return
        self._senders.append(who)
        if who is not None:
            self._waiting[who] = self._waiting.get(who, 0) + 1

    @property
    def pending(self) -> int:
        """Releases waiting for room in the socket."""
        return len(self._pending)

    def send(self, data: bytes) -> bool:
        """Queue one command; False when refused. A release is always accepted (True)."""
        self.pump()
        if C.is_release(data):
            if self._pending or not self._raw(data):
                self._keep(data)
            return True
        who = self._sender
        if who is not None and self._taken is not None and self.waiting(who) >= SENDER_SHARE:
            self.refused += 1
            self.over_share += 1
            self._refused_share = True
            return False
        if self._pending or not self._raw(data):
            self.refused += 1
            return False
        return True

    def _raw(self, data: bytes) -> bool:
        if not self._send_raw(data):
            return False
        self._sent()
        return True

    def clear(self) -> None:
        """Forget waiting releases and who sent what (the audio process they were for was replaced:
        it holds no voice, and its socket is new)."""
        self._pending.clear()
        self._forget(self._taken() if self._taken is not None else 0)

    def pump(self) -> bool:
        """Send waiting releases, oldest first; True while some still wait."""
        while self._pending:
            key, data = next(iter(self._pending.items()))
            speaker, self._sender = self._sender, None  # a release that waited is the server's to send
            try:
                if not self._raw(data):
                    return True
            finally:
                self._sender = speaker
            del self._pending[key]
        return False

    def _keep(self, data: bytes) -> None:
        self.deferred += 1
        was_empty = not self._pending
        key = _release_key(data)
        layer = key[0]
        mine = [k for k in self._pending if k[0] == layer]
        if key[1] == C.Kind.PANIC or (key not in self._pending and len(mine) >= MAX_PENDING):
            # A panic releases everything its layer's waiting releases would (and more): it replaces them.
            for k in mine:
                del self._pending[k]
            self._pending[(layer, int(C.Kind.PANIC), 0)] = C.with_layer(C.simple(C.Kind.PANIC, 0.0), layer)
        else:
            old = self._pending.pop(key, None)  # re-inserted: it goes out after what came before it
            if old is not None and key[1] == C.Kind.CUT:
                data = C.merge_cuts(old, data)  # both clients' keys go, not only the later one's
            self._pending[key] = data
        if was_empty and self.on_pending is not None:
            self.on_pending()
