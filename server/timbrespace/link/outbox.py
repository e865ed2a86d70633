"""The control side's way into the command socket: a release is never the message dropped.

When the socket to the audio process is full (a note flood, a stalled audio process), a command
that starts sound is refused (the client gets ``/fail``), but one that releases sound is kept in
a small side queue and retried until the socket takes it: otherwise a dropped note-off leaves a
note sounding for good.  The side queue is keyed by what it releases, so it coalesces: at most one
entry per MIDI key, per timbre voice slot, per engine's cut keys, plus one panic, however long the flood.  While it is
not empty every other command is refused, so nothing overtakes a release (a note-on after the
note-off that is still waiting would otherwise be released by it).
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from timbrespace.link import commands as C

#: Bound on the side queue per layer: 128 keys + 128 slots + two cuts + a panic fit; past it, one
#: panic replaces all of that layer's.
MAX_PENDING = 260

ReleaseKey = tuple[int, int, int]


def _release_key(data: bytes) -> ReleaseKey:
    """What a release command releases: (layer, kind, key or slot); a panic is (layer, PANIC, 0)."""
    kind, layer = data[0], data[1]
    if kind in (C.Kind.NOTE, C.Kind.VOICE, C.Kind.CUT):  # a key, a slot, or the engine whose keys are cut
        return layer, kind, struct.unpack_from("<i", data, C.HEADER.size)[0]
    return layer, kind, 0


class Outbox:
    """Sends commands through ``send_raw`` (False when the socket is full), keeping releases."""

    def __init__(self, send_raw: Callable[[bytes], bool]) -> None:
        self._send_raw = send_raw
        self._pending: dict[ReleaseKey, bytes] = {}
        #: Called when a release had to wait: the owner should call :meth:`pump` soon.
        self.on_pending: Callable[[], None] | None = None
        self.refused = 0  # commands refused (the socket was full or releases waited)
        self.deferred = 0  # releases that had to wait in the side queue

    @property
    def pending(self) -> int:
        """Releases waiting for room in the socket."""
        return len(self._pending)

    def send(self, data: bytes) -> bool:
        """Queue one command; False when refused. A release is always accepted (True)."""
        self.pump()
        if C.is_release(data):
            if self._pending or not self._send_raw(data):
                self._keep(data)
            return True
        if self._pending or not self._send_raw(data):
            self.refused += 1
            return False
        return True

    def clear(self) -> None:
        """Forget waiting releases (the audio process they were for was replaced: it holds no voice)."""
        self._pending.clear()

    def pump(self) -> bool:
        """Send waiting releases, oldest first; True while some still wait."""
        while self._pending:
            key, data = next(iter(self._pending.items()))
            if not self._send_raw(data):
                return True
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
