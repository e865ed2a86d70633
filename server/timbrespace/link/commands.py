"""Commands from the control side to the synth, in a fixed binary layout.

One command is one datagram on a Unix SEQPACKET socket (or one item of a render's schedule).
Patch vectors do not travel here: only the newest matters, so they go through
``link.mailbox.PatchMailbox`` instead.
The layout is fixed so the audio side decodes with one ``struct.unpack_from`` and no pickle:
``<B B d`` (kind, layer, arrival time on the monotonic clock) then the kind's payload. The
layer says which layer's voices a command is for (0 for commands that are not a layer's); engines
build commands for layer 0 and their layer's link rewrites that byte (:func:`with_layer`).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum


class Kind(IntEnum):
    """Command kinds."""

    NOTE = 1  # pitch, velocity (0 = release)
    PITCH = 2  # fractional MIDI pitch of the most recent note
    PANIC = 5  # all notes off
    SYNC = 6  # echo the id back once everything before it is applied
    QUIT = 7  # leave the audio loop
    VOICE = 8  # timbre engine: start (level > 0) or release (level 0) the voice of a frame slot
    ENGINE = 9  # which synth is heard: 0 patch, 1 timbre (the other is silenced)
    HELD = 10  # reconcile: an engine's keys (patch) or slots (timbre) the control side holds
    CUT = 11  # silence an engine's keys (patch) or slots (timbre) now: one client's panic
    MIX = 12  # a layer's gain and pan in the mix
    # audio -> control
    SYNCED = 100  # id
    READY = 101  # sample rate, block size, backend code


HEADER = struct.Struct("<BBd")
#: Layers a command can name (its layer is one byte).
MAX_LAYERS = 256
_NOTE = struct.Struct("<BBdii")
_PITCH = struct.Struct("<BBdd")
_ID = struct.Struct("<BBdq")
_VOICE = struct.Struct("<BBdid")
_ENGINE = struct.Struct("<BBdi")
_HELD = struct.Struct("<BBdiQQ")
_MIX = struct.Struct("<BBddd")
#: Keys (or slots) a HELD command can name: MIDI's 128.
HELD_KEYS = 128
ENGINE_CODES = {"patch": 0, "timbre": 1}
_READY = struct.Struct("<BBdii16s24s")


@dataclass(frozen=True)
class Command:
    """A decoded command; ``args`` depend on the kind."""

    kind: Kind
    arrival: float
    args: tuple[float | int | str, ...] = ()
    layer: int = 0


def note(pitch: int, velocity: int, arrival: float) -> bytes:
    """Start (velocity > 0) or release a note."""
    return _NOTE.pack(Kind.NOTE, 0, arrival, pitch, velocity)


def pitch(midi: float, arrival: float) -> bytes:
    """Glide the most recent note."""
    return _PITCH.pack(Kind.PITCH, 0, arrival, midi)


def simple(kind: Kind, arrival: float = 0.0) -> bytes:
    """A command with no payload (PANIC, QUIT)."""
    return HEADER.pack(kind, 0, arrival)


def voice(slot: int, level: float, arrival: float) -> bytes:
    """Start the timbre voice ``slot`` from its frame (level > 0), or release it (level 0)."""
    return _VOICE.pack(Kind.VOICE, 0, arrival, slot, level)


def engine(name: str, arrival: float = 0.0) -> bytes:
    """Make ``name``'s synth the one heard."""
    return _ENGINE.pack(Kind.ENGINE, 0, arrival, ENGINE_CODES[name])


def mix(gain: float, pan: float, arrival: float = 0.0) -> bytes:
    """Place the layer in the mix: its gain (linear) and pan (-1 left .. 1 right)."""
    return _MIX.pack(Kind.MIX, 0, arrival, gain, pan)


def held(engine_name: str, keys: Iterable[int], arrival: float = 0.0) -> bytes:
    """The keys (patch engine) or slots (timbre engine) the control side holds; the rest are released."""
    return _mask(Kind.HELD, engine_name, keys, arrival)


def cut(engine_name: str, keys: Iterable[int], arrival: float = 0.0) -> bytes:
    """Silence ``engine_name``'s keys (patch) or slots (timbre) at once, as PANIC does for all of them."""
    return _mask(Kind.CUT, engine_name, keys, arrival)


def merge_cuts(a: bytes, b: bytes) -> bytes:
    """One CUT for the keys of two CUTs of the same engine (the later arrival time)."""
    ka, la, ta, code, lo_a, hi_a = _HELD.unpack(a)
    kb, lb, tb, code_b, lo_b, hi_b = _HELD.unpack(b)
    if not ka == kb == Kind.CUT or code != code_b or la != lb:
        raise ValueError("merge_cuts: two CUT commands of the same engine and layer were expected")
    return _HELD.pack(Kind.CUT, la, max(ta, tb), code, lo_a | lo_b, hi_a | hi_b)


def _mask(kind: Kind, engine_name: str, keys: Iterable[int], arrival: float) -> bytes:
    mask = 0
    for k in keys:
        if 0 <= k < HELD_KEYS:
            mask |= 1 << k
    return _HELD.pack(kind, 0, arrival, ENGINE_CODES[engine_name], mask & (2**64 - 1), mask >> 64)


def is_release(data: bytes) -> bool:
    """Whether a command only releases sound (a note-off, a voice release, a panic).

    The control side never drops these: see :class:`timbrespace.link.outbox.Outbox`.
    """
    kind = data[0] if data else 0
    if kind in (Kind.PANIC, Kind.CUT):
        return True
    if kind == Kind.NOTE and len(data) == _NOTE.size:
        return bool(_NOTE.unpack(data)[4] <= 0)
    if kind == Kind.VOICE and len(data) == _VOICE.size:
        return bool(_VOICE.unpack(data)[4] <= 0.0)
    return False


def with_id(kind: Kind, ident: int, arrival: float = 0.0) -> bytes:
    """SYNC or SYNCED with its id."""
    return _ID.pack(kind, 0, arrival, ident)


def ready(sample_rate: int, block_size: int, backend: str, scheduling: str = "") -> bytes:
    """The audio process is up (or, with backend ``error:NAME``, could not start)."""
    return _READY.pack(Kind.READY, 0, 0.0, sample_rate, block_size, backend.encode()[:16], scheduling.encode()[:24])


def decode(data: bytes) -> Command:
    """Decode one datagram; ValueError for anything that is not a whole known command."""
    if len(data) < HEADER.size:
        raise ValueError(f"command too short ({len(data)} bytes)")
    kind = Kind(data[0])
    if kind is Kind.NOTE:
        _, layer, t, p, v = _NOTE.unpack(data)
        return Command(kind, t, (p, v), layer)
    if kind is Kind.PITCH:
        _, layer, t, m = _PITCH.unpack(data)
        return Command(kind, t, (m,), layer)
    if kind is Kind.VOICE:
        _, layer, t, slot, level = _VOICE.unpack(data)
        return Command(kind, t, (slot, level), layer)
    if kind is Kind.ENGINE:
        _, layer, t, code = _ENGINE.unpack(data)
        return Command(kind, t, (code,), layer)
    if kind in (Kind.HELD, Kind.CUT):
        _, layer, t, code, lo, hi = _HELD.unpack(data)
        return Command(kind, t, (code, lo | (hi << 64)), layer)
    if kind is Kind.MIX:
        _, layer, t, gain, pan = _MIX.unpack(data)
        return Command(kind, t, (gain, pan), layer)
    if kind in (Kind.SYNC, Kind.SYNCED):
        _, layer, t, ident = _ID.unpack(data)
        return Command(kind, t, (ident,), layer)
    if kind is Kind.READY:
        _, layer, t, sr, bs, name, sched = _READY.unpack(data)
        return Command(kind, t, (sr, bs, name.rstrip(b"\0").decode(), sched.rstrip(b"\0").decode()), layer)
    _, layer, t = HEADER.unpack(data)
    return Command(kind, t, (), layer)


def with_layer(data: bytes, layer: int) -> bytes:
    """The same command for ``layer``'s voices."""
    if not 0 <= layer < MAX_LAYERS:
        raise ValueError(f"layer {layer} is out of range 0..{MAX_LAYERS - 1}")
    return data[:1] + bytes((layer,)) + data[2:]
