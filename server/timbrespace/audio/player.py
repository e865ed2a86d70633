"""What happens at the start of every audio block (live and offline alike).

Each layer takes the newest patch from its mailbox, then queued commands are applied in arrival
order to the layer each names, at most ``max_commands`` per block so a flood of notes cannot make
one block late: the rest wait in the socket for the next block.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np
import numpy.typing as npt

from timbrespace.link import commands as C
from timbrespace.link.layers import LayerSound
from timbrespace.link.mailbox import PatchMailbox
from timbrespace.link.stats import BLOCK_T, BLOCKS, VOICES, AudioStats

if TYPE_CHECKING:
    from timbrespace.audio.timbre_voices import TimbreVoices

_ENGINE_NAMES = {code: name for name, code in C.ENGINE_CODES.items()}


class Synth(Protocol):
    """What the player needs of a synth (``audio.synth.PatchSynth``)."""

    def set_patch(self, values: npt.NDArray[np.float64]) -> None: ...
    def note_on(self, pitch: int, velocity: int) -> None: ...
    def note_off(self, pitch: int) -> None: ...
    def set_pitch(self, midi: float) -> None: ...
    def all_notes_off(self) -> None: ...
    def reconcile(self, held: int) -> None: ...
    def cut(self, keys: int) -> None: ...
    @property
    def active_voices(self) -> int: ...


class LayerVoices:
    """One layer's synths: the patch voices, the timbre voices, its mailbox, its engine fader and
    its place in the mix."""

    def __init__(self, synth: Synth, mailbox: PatchMailbox, timbre: TimbreVoices | None = None,
                 select: Callable[[str], None] | None = None,
                 place: Callable[[LayerSound], None] | None = None) -> None:
        self.synth = synth
        #: The timbre engine's voices (None when the server runs without the timbre model).
        self.timbre = timbre
        self.mailbox = mailbox
        self._select = select
        self._place = place

    @property
    def active_voices(self) -> int:
        """Voices sounding or releasing."""
        return self.synth.active_voices + (self.timbre.active_voices if self.timbre is not None else 0)

    def begin(self, clock: Callable[[], float], stats: AudioStats) -> None:
        """The block's start: the newest patch, the timbre frames. ``clock`` tells when it was taken."""
        taken = self.mailbox.take()
        if taken is not None:
            values, arrival = taken
            self.synth.set_patch(values)
            if arrival > 0.0:
                stats.record_latency(clock() - arrival)
        if self.timbre is not None:
            self.timbre.block()

    def apply(self, cmd: C.Command) -> None:
        """Apply one of this layer's event commands."""
        s = self.synth
        k = cmd.kind
        if k is C.Kind.NOTE:
            p, v = int(cmd.args[0]), int(cmd.args[1])
            if v > 0:
                s.note_on(p, v)
            else:
                s.note_off(p)
        elif k is C.Kind.PITCH:
            s.set_pitch(float(cmd.args[0]))
        elif k is C.Kind.VOICE:
            if self.timbre is not None:
                self.timbre.voice(int(cmd.args[0]), float(cmd.args[1]))
        elif k is C.Kind.ENGINE:
            if self._select is not None:
                self._select(_ENGINE_NAMES.get(int(cmd.args[0]), "patch"))
        elif k is C.Kind.MIX:
            if self._place is not None:
                self._place(LayerSound(float(cmd.args[0]), float(cmd.args[1])))
        elif k is C.Kind.HELD:
            code, held = int(cmd.args[0]), int(cmd.args[1])
            if code == C.ENGINE_CODES["patch"]:
                s.reconcile(held)
            elif self.timbre is not None:
                self.timbre.reconcile(held)
        elif k is C.Kind.CUT:
            code, keys = int(cmd.args[0]), int(cmd.args[1])
            if code == C.ENGINE_CODES["patch"]:
                s.cut(keys)
            elif self.timbre is not None:
                self.timbre.cut(keys)
        elif k is C.Kind.PANIC:
            s.all_notes_off()
            if self.timbre is not None:
                self.timbre.all_off()


class Player:
    """Applies the mailboxes and queued commands to the layers' synths at each block boundary."""

    def __init__(
        self,
        layers: Sequence[LayerVoices],
        stats: AudioStats,
        receive: Callable[[], bytes | None],
        reply: Callable[[bytes], None],
        max_commands: int = 64,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.layers = list(layers)
        # A latency runs from a command's arrival to the moment the audio side takes it. Live, that
        # is the clock's reading after the take: a command can come in after the block's callback
        # began, and the block's start would then give it a negative latency. Offline (no clock),
        # the block's start in rendered time is when everything queued before it is taken.
        self._clock = clock
        self._now = 0.0
        self.stats = stats
        self._receive = receive
        self._reply = reply
        self.max_commands = max_commands
        self.quit = False
        self.misdirected = 0  # commands for a layer this process does not have (dropped)

    @classmethod
    def one(cls, synth: Synth, mailbox: PatchMailbox, stats: AudioStats, receive: Callable[[], bytes | None],
            reply: Callable[[bytes], None], *, timbre: TimbreVoices | None = None,
            select: Callable[[str], None] | None = None, max_commands: int = 64) -> Player:
        """A player of one layer."""
        return cls([LayerVoices(synth, mailbox, timbre, select)], stats, receive, reply, max_commands)

    def block(self, now: float) -> None:
        """Run at the start of the block that begins at ``now`` (monotonic seconds)."""
        self._now = now
        for layer in self.layers:
            layer.begin(self._taken, self.stats)
        for _ in range(self.max_commands):
            data = self._receive()
            if data is None:
                break
            self.apply(C.decode(data))
        a = self.stats.array
        a[BLOCKS] += 1
        a[BLOCK_T] = now
        a[VOICES] = sum(layer.active_voices for layer in self.layers)

    def _taken(self) -> float:
        """When what was just received was taken: the live clock's reading, else the block's start."""
        return self._clock() if self._clock is not None else self._now

    def apply(self, cmd: C.Command) -> None:
        """Apply one event command to the layer it names (SYNC and QUIT are the process's)."""
        k = cmd.kind
        if k is C.Kind.SYNC:
            self._reply(C.with_id(C.Kind.SYNCED, int(cmd.args[0])))
            return
        if k is C.Kind.QUIT:
            self.quit = True
            return
        if cmd.layer >= len(self.layers):
            self.misdirected += 1
            return
        self.layers[cmd.layer].apply(cmd)
        if k in (C.Kind.NOTE, C.Kind.PITCH, C.Kind.VOICE) and cmd.arrival > 0.0:
            self.stats.record_latency(self._taken() - cmd.arrival)
