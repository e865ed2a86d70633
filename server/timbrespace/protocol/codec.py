"""OSC 1.0/1.1 packet types and decoding: messages, nested bundles and NTP time tags.

Encoding is in :mod:`timbrespace.protocol.encode`.

Strict: every malformed packet raises :class:`OscDecodeError` whose text says what is wrong and
where.  Fast: decoding caches a plan per message header (address + type tags), encoding one per
argument-type signature, as precompiled structs and small generated functions.  The decoder's
cache is bounded in count and bytes: only short headers get a plan (:data:`PLAN_MAX_TAGS`,
:data:`PLAN_MAX_HEADER`), at most :data:`PLAN_CACHE` of them (oldest evicted first), and a plan's
generated function is built only when its header comes back (:data:`PLAN_HOT`); other messages take the linear path
that validates as it goes.  Measured here
(a slow VM): a 24-argument ``/status.reply`` encodes in ~3.5 us (python-osc's builder: ~90 us),
an argument-less ``/status`` decodes in ~0.4 us (python-osc: ~3.6 us).

Tags, decoded as / encoded from: ``i`` int / int in int32 range; ``h`` int / larger ints or
:class:`Int64`; ``f`` float (NaN and inf kept) / float (sent as ``d`` beyond float32 range);
``d`` float / :class:`Double`; ``s``, ``S`` str / str; ``b`` bytes / bytes-like; ``t``
:class:`TimeTag` / TimeTag; ``T``, ``F`` bool; ``N`` None; ``I`` :data:`IMPULSE`; ``c`` one-char
str, ``r`` uint32 int, ``m`` 4-tuple / only with explicit ``tags``; ``[ ]`` list / list or tuple.
Numbers registered as :mod:`numbers` Integral/Real (numpy scalars) encode as ``i``/``h``/``f``.
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Callable
from enum import Enum
from typing import Any, NamedTuple

NTP_DELTA = 2208988800
"""Seconds from the NTP epoch (1900-01-01) to the Unix epoch (1970-01-01)."""

MAX_BUNDLE_DEPTH = 32
_CACHE_LIMIT = 4096  # the encoder's caches (encode.py)
PLAN_MAX_TAGS = 16
"""Headers with more type tags than this are decoded without a cached plan (linear, no codegen).

The server's own addresses take at most four arguments; generating a decoder costs CPU in
proportion to its tags, so a client cannot buy much work with one small packet."""
PLAN_MAX_HEADER = 512
"""Headers (address + type tags, padded) longer than this are not cached."""
PLAN_CACHE = 1024
"""Header plans kept at most; a full cache forgets its oldest."""
PLAN_HOT = 4
"""A plan's decoder is generated when its header has come back this many times."""
PLAN_BYTES = 4 << 20
"""Estimated bytes the cached plans may hold (see ``_Plan.cost``); oldest forgotten first."""
_PLAN_TAG_BYTES = 400  # a generated decoder's bytes per type tag, measured with tracemalloc, rounded up
_TWO32 = 4294967296
_BUNDLE_HEAD = b"#bundle\x00"
_STR_PAD = (b"\x00\x00\x00\x00", b"\x00\x00\x00", b"\x00\x00", b"\x00")
_BLOB_PAD = (b"", b"\x00\x00\x00", b"\x00\x00", b"\x00")
_I32 = struct.Struct(">i")
_U64 = struct.Struct(">Q")


class OscDecodeError(ValueError):
    """A packet that is not valid OSC; ``str(exc)`` is the precise reason."""


class OscEncodeError(ValueError):
    """Values that cannot be encoded as OSC."""


class TimeTag(int):
    """A raw 64-bit NTP time tag: seconds since 1900 in the high 32 bits, fraction in the low.

    The value 1 (:data:`IMMEDIATELY`) means "now".  Conversion follows RFC 4330's
    era rule: seconds with the top bit clear are taken to be after 2036-02-07.
    """

    __slots__ = ()

    @classmethod
    def from_unix(cls, t: float) -> TimeTag:
        """The time tag for Unix time ``t`` (seconds since 1970, as ``time.time()``)."""
        sec = math.floor(t)
        frac = int((t - sec) * _TWO32)
        return cls((((sec + NTP_DELTA) % _TWO32) << 32) | min(frac, _TWO32 - 1))

    @property
    def immediate(self) -> bool:
        """True for the special "immediately" tag."""
        return self == 1

    def to_unix(self) -> float:
        """Unix time of this tag (meaningless for :data:`IMMEDIATELY`)."""
        sec = self >> 32
        if sec < 0x80000000:  # era 1: 2036-02-07 .. 2104
            sec += _TWO32
        return sec - NTP_DELTA + (self & 0xFFFFFFFF) / _TWO32

    def __repr__(self) -> str:
        return "TimeTag(IMMEDIATELY)" if self == 1 else f"TimeTag({self.to_unix():.6f})"


IMMEDIATELY = TimeTag(1)


class Double(float):
    """A float to be sent as ``d`` (float64)."""

    __slots__ = ()


class Int64(int):
    """An int to be sent as ``h`` (int64) even when it fits in int32."""

    __slots__ = ()


class Impulse(Enum):
    """OSC 1.1 impulse (``I``, "bang"); OSC 1.0 calls the same tag Infinitum."""

    IMPULSE = "I"

    def __repr__(self) -> str:
        return "IMPULSE"


IMPULSE = Impulse.IMPULSE


class Message(NamedTuple):
    """A decoded OSC message; ``tags`` is the wire type tag string without the comma."""

    address: str
    args: tuple[object, ...]
    tags: str = ""


class Bundle(NamedTuple):
    """A decoded OSC bundle: a time tag and its elements, in packet order."""

    timetag: TimeTag
    elements: tuple[Message | Bundle, ...]


Packet = Message | Bundle

# --------------------------------------------------------------------------- decoding

# Fixed-size tags: struct code, post-conversion (None = as is).
_FIXED: dict[str, tuple[str, Callable[[Any], object] | None]] = {
    "i": ("i", None),
    "f": ("f", None),
    "h": ("q", None),
    "d": ("d", None),
    "t": ("Q", TimeTag),
    "r": ("I", None),
    "c": ("i", chr),
}
_FIXED_ST = {c: (struct.Struct(">" + code), conv) for c, (code, conv) in _FIXED.items()}
_CONST: dict[str, object] = {"T": True, "F": False, "N": None, "I": IMPULSE}
_KNOWN_TAGS = frozenset("ifhdtrTFNIsSbcm[]")


_Decoder = Callable[[bytes, int], tuple[object, ...]]


class _Retry(Exception):
    """Internal: the fast path met something odd; re-decode slowly for the precise reason."""


class _Plan:
    """How to decode the arguments that follow one cached message header."""

    __slots__ = ("address", "cost", "dec", "empty", "gen", "hits", "size", "st", "tags")

    def __init__(self, address: str, tags: str, header: int) -> None:
        self.address = address
        #: Bytes charged against PLAN_BYTES: as if the decoder were generated (an upper bound).
        self.cost = 2 * header + 1024 + _PLAN_TAG_BYTES * len(tags)
        self.tags = tags
        self.empty: Message | None = Message(address, (), "") if not tags else None
        self.st: struct.Struct | None = None  # all plain fixed-size values: one unpack
        self.size = 0
        self.dec: _Decoder | None = None  # other common tags: generated code, see hot()
        self.gen = False
        self.hits = 0
        if tags and all(c in _FIXED and _FIXED[c][1] is None for c in tags):
            self.st = struct.Struct(">" + "".join(_FIXED[c][0] for c in tags))
            self.size = self.st.size
        elif tags and all(c in "ihfdtrcsSbTFNI" for c in tags):
            self.gen = True  # generated once the header proves common (PLAN_HOT), not for one-offs

    def hot(self, data: bytes, off: int) -> tuple[object, ...]:
        """Decode the arguments at ``off`` before the decoder exists; generate it once hot."""
        self.hits += 1
        if self.hits < PLAN_HOT:
            return _decode_args(data, off, self.tags)
        self.dec = dec = _make_decoder(self.tags)
        return dec(data, off)


def _make_decoder(tags: str) -> _Decoder:
    """Generate a function decoding the arguments of ``tags`` at an offset; raises on anything odd.

    The generated code only names locals ``v0..vN`` and the helpers in ``env``.
    """
    env: dict[str, Any] = {"R": _Retry, "I32": _I32.unpack_from}
    src = ["def dec(data, off):", "n = len(data)", "F = data.find", "C = data.count"]
    for m in re.finditer(r"[ihfdtrc]+|[sSbTFNI]", tags):
        run, lo = m.group(), m.start()
        if run in ("s", "S"):
            src += ["e = F(0, off)", "x = (e + 4) & -4"]
            src += ["if e < off or x > n or C(0, e, x) != x - e: raise R", f"v{lo} = data[off:e].decode()"]
            src.append("off = x")
        elif run == "b":
            src += ["z, = I32(data, off)", "e = off + 4 + z", "x = (e + 3) & -4"]
            src += ["if z < 0 or x > n or C(0, e, x) != x - e: raise R", f"v{lo} = data[off + 4:e]"]
            src.append("off = x")
        elif run in _CONST:
            env[f"K{lo}"] = _CONST[run]
            src.append(f"v{lo} = K{lo}")
        else:
            st = struct.Struct(">" + "".join(_FIXED[c][0] for c in run))
            env[f"P{lo}"] = st.unpack_from
            names = "".join(f"v{i}, " for i in range(lo, m.end()))
            src += [f"{names}= P{lo}(data, off)", f"off += {st.size}"]
            for i, c in enumerate(run):
                if _FIXED[c][1] is not None:
                    env[f"T_{c}"] = _FIXED[c][1]
                    src.append(f"v{lo + i} = T_{c}(v{lo + i})")
    src += ["if off != n: raise R", f"return ({''.join(f'v{i}, ' for i in range(len(tags)))})"]
    exec("\n    ".join(src), env)
    dec: _Decoder = env.pop("dec")  # no function <-> globals cycle: freed as soon as it is evicted
    return dec


_PLANS: dict[bytes, _Plan] = {}
_plan_bytes = 0  # sum of the cached plans' cost
_new = tuple.__new__


def decode_packet(data: bytes) -> Message | Bundle:
    """Decode one OSC packet (a message or a bundle); raises :class:`OscDecodeError`."""
    if type(data) is not bytes:
        data = bytes(data)
    if data[:1] == b"/":
        return decode_message(data)
    return _decode(data, 0)


def decode_message(data: bytes) -> Message:
    """Decode one OSC message (``bytes``); raises :class:`OscDecodeError`."""
    if len(data) <= 32:  # argument-less requests (/status) are cached whole
        plan = _PLANS.get(data)
        if plan is not None and plan.empty is not None:
            return plan.empty
    a = data.find(0)
    if a > 0:
        e = data.find(0, (a + 4) & -4)
        if e > 0:
            h = (e + 4) & -4
            plan = _PLANS.get(data[:h])
            if plan is not None:
                n = len(data)
                st = plan.st
                if st is not None:
                    if n == h + plan.size:
                        return _new(Message, (plan.address, st.unpack_from(data, h), plan.tags))
                elif plan.gen:
                    try:
                        dec = plan.dec
                        args = dec(data, h) if dec is not None else plan.hot(data, h)
                        return _new(Message, (plan.address, args, plan.tags))
                    except (_Retry, struct.error, ValueError):
                        pass
                elif plan.empty is None and not n & 3:
                    return Message(plan.address, _decode_args(data, h, plan.tags), plan.tags)
    return _decode_message_slow(bytes(data))


def _decode(data: bytes, depth: int) -> Message | Bundle:
    n = len(data)
    if not n:
        raise OscDecodeError("empty packet")
    if n & 3:
        raise OscDecodeError(f"packet size {n} is not a multiple of 4")
    first = data[0]
    if first == 0x2F:  # '/'
        return decode_message(data)
    if first == 0x23:  # '#'
        if data[:8] != _BUNDLE_HEAD:
            raise OscDecodeError(f"packet starts with {data[:8]!r}, not '#bundle\\0'")
        return _decode_bundle(data, depth)
    raise OscDecodeError(f"packet starts with {data[:1]!r}: neither an address ('/') nor '#bundle'")


def _decode_bundle(data: bytes, depth: int) -> Bundle:
    if depth >= MAX_BUNDLE_DEPTH:
        raise OscDecodeError(f"bundles nested deeper than {MAX_BUNDLE_DEPTH} levels")
    n = len(data)
    if n < 16:
        raise OscDecodeError(f"bundle of {n} bytes is shorter than its 16-byte header (missing time tag)")
    (tt,) = _U64.unpack_from(data, 8)
    elements: list[Message | Bundle] = []
    off = 16
    while off < n:
        k = len(elements)
        (size,) = _I32.unpack_from(data, off)
        off += 4
        if size <= 0:
            raise OscDecodeError(f"bundle element {k}: size {size} is not positive")
        if size & 3:
            raise OscDecodeError(f"bundle element {k}: size {size} is not a multiple of 4")
        if off + size > n:
            raise OscDecodeError(
                f"bundle element {k}: size {size} overflows the bundle ({n - off} bytes left)"
            )
        try:
            elements.append(_decode(data[off : off + size], depth + 1))
        except OscDecodeError as exc:
            raise OscDecodeError(f"bundle element {k}: {exc}") from None
        off += size
    return Bundle(TimeTag(tt), tuple(elements))


def _read_string(data: bytes, off: int, what: str) -> tuple[str, int]:
    """Read a null-terminated, zero-padded OSC-string at ``off``; returns (text, next offset)."""
    end = data.find(0, off)
    if end < 0:
        raise OscDecodeError(f"{what} at offset {off} is not null-terminated")
    nxt = (end + 4) & -4
    if nxt > len(data):
        raise OscDecodeError(f"{what} at offset {off}: padding truncated by end of packet")
    if data[end:nxt].count(0) != nxt - end:
        raise OscDecodeError(f"{what} at offset {off}: bad padding (non-zero byte after terminator)")
    try:
        return data[off:end].decode(), nxt
    except UnicodeDecodeError as exc:
        raise OscDecodeError(f"{what} at offset {off} is not valid UTF-8 ({exc.reason})") from None


def _decode_message_slow(data: bytes) -> Message:
    """Full validation with precise reasons; caches the header plan when it is valid."""
    n = len(data)
    if not n:
        raise OscDecodeError("empty packet")
    if n & 3:
        raise OscDecodeError(f"message size {n} is not a multiple of 4")
    if data[0] != 0x2F:
        raise OscDecodeError(f"address must start with '/', got {data[:1]!r}")
    address, off = _read_string(data, 0, "address")
    if off >= n:
        raise OscDecodeError(f"missing type tag string after address {address!r}")
    if data[off] != 0x2C:  # ','
        raise OscDecodeError(f"type tag string must start with ',', got {data[off : off + 1]!r}")
    tagstr, h = _read_string(data, off, "type tag string")
    tags = tagstr[1:]
    bad = next((p for p, c in enumerate(tags) if c not in _KNOWN_TAGS), -1)
    if bad >= 0:
        raise OscDecodeError(f"unknown type tag {tags[bad]!r} at position {bad} in ',{tags}'")
    args = _decode_args(data, h, tags)
    if len(tags) <= PLAN_MAX_TAGS and h <= PLAN_MAX_HEADER:
        _remember(data[:h], _Plan(address, tags, h))
    return Message(address, args, tags)


def _remember(header: bytes, plan: _Plan) -> None:
    """Cache ``plan``, forgetting the oldest plans (dicts keep insertion order) to stay in bounds."""
    global _plan_bytes
    old = _PLANS.pop(header, None)
    if old is not None:
        _plan_bytes -= old.cost
    while _PLANS and (len(_PLANS) >= PLAN_CACHE or _plan_bytes + plan.cost > PLAN_BYTES):
        _plan_bytes -= _PLANS.pop(next(iter(_PLANS))).cost
    _PLANS[header] = plan
    _plan_bytes += plan.cost


def _need(data: bytes, off: int, size: int, pos: int, tag: str) -> None:
    if off + size > len(data):
        raise OscDecodeError(
            f"argument {pos} ('{tag}') truncated: needs {size} bytes at offset {off}, packet has {len(data)}"
        )


def _decode_args(data: bytes, off: int, tags: str) -> tuple[object, ...]:
    """Decode the arguments of ``tags`` starting at ``off``; the data must end exactly after them."""
    out: list[object] = []
    stack: list[list[object]] = []
    for pos, c in enumerate(tags):
        fixed = _FIXED_ST.get(c)
        if fixed is not None:
            st, conv = fixed
            _need(data, off, st.size, pos, c)
            (val,) = st.unpack_from(data, off)
            try:
                out.append(conv(val) if conv else val)
            except ValueError:  # chr() of a bad 'c'
                raise OscDecodeError(f"argument {pos} ('c'): {val} is not a character code") from None
            off += st.size
        elif c == "s" or c == "S":
            if off >= len(data):
                _need(data, off, 4, pos, c)
            s, off = _read_string(data, off, f"argument {pos} ('{c}')")
            out.append(s)
        elif c == "b":
            _need(data, off, 4, pos, c)
            (size,) = _I32.unpack_from(data, off)
            if size < 0:
                raise OscDecodeError(f"argument {pos} ('b'): negative blob size {size}")
            start = off + 4
            off = start + ((size + 3) & -4)
            if off > len(data):
                raise OscDecodeError(
                    f"argument {pos} ('b'): blob of {size} bytes at offset {start} overflows the packet "
                    f"({len(data) - start} bytes left)"
                )
            if data[start + size : off].count(0) != off - start - size:
                raise OscDecodeError(f"argument {pos} ('b'): bad padding after blob")
            out.append(data[start : start + size])
        elif c in _CONST:
            out.append(_CONST[c])
        elif c == "m":
            _need(data, off, 4, pos, c)
            out.append(tuple(data[off : off + 4]))
            off += 4
        elif c == "[":
            stack.append(out)
            out = []
        elif c == "]":
            if not stack:
                raise OscDecodeError(f"unbalanced ']' at position {pos} in ',{tags}'")
            inner = out
            out = stack.pop()
            out.append(inner)
        else:
            raise OscDecodeError(f"unknown type tag {c!r} at position {pos} in ',{tags}'")
    if stack:
        raise OscDecodeError(f"unclosed '[' in ',{tags}'")
    if off != len(data):
        raise OscDecodeError(f"{len(data) - off} trailing bytes after the last argument (offset {off})")
    return tuple(out)
