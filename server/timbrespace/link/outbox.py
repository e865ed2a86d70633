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

#: Bound on the side queue: 128 keys + 128 slots + two cuts + a panic fit; past it, one panic replaces all.
MAX_PENDING = 260


def _release_key(data: bytes) -> tuple[int, int]:
    """What a release command releases: (kind, key or slot); a panic is (PANIC, 0)."""
    kind = data[0]
    if kind == C.Kind.NOTE:
        return kind, struct.unpack_from("<i", data, 9)[0]
    if kind in (C.Kind.VOICE, C.Kind.CUT):  # a slot, or the engine whose keys are cut
        return kind, struct.unpack_from("<i", data, 9)[0]
    return kind, 0


class Outbox:
    """Sends commands through ``send_raw`` (False when the socket is full), keeping releases."""

    def __init__(self, send_raw: Callable[[bytes], bool]) -> None:
        self._send_raw = send_raw
        self._pending: dict[tuple[int, int], bytes] = {}
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
        if key[0] == C.Kind.PANIC or (key not in self._pending and len(self._pending) >= MAX_PENDING):
            # A panic releases everything the waiting releases would (and more): it replaces them.
            self._pending = {(int(C.Kind.PANIC), 0): C.simple(C.Kind.PANIC, 0.0)}
        else:
            old = self._pending.pop(key, None)  # re-inserted: it goes out after what came before it
            if old is not None and key[0] == C.Kind.CUT:
                data = C.merge_cuts(old, data)  # both clients' keys go, not only the later one's
            self._pending[key] = data
        if was_empty and self.on_pending is not None:
            self.on_pending()
