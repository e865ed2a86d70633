"""OSC 1.0/1.1 encoding: messages and nested bundles, with a cached plan per argument-type signature.

The types (:class:`~timbrespace.protocol.codec.TimeTag`, ``Double``, ``Int64``, ``Message``,
``Bundle``...) and decoding live in :mod:`timbrespace.protocol.codec`; see its docstring for the
tag table.
"""

from __future__ import annotations

import math
import numbers
import re
import struct
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from timbrespace.protocol.codec import (
    _BLOB_PAD,
    _BUNDLE_HEAD,
    _CACHE_LIMIT,
    _CONST,
    _I32,
    _STR_PAD,
    _U64,
    IMMEDIATELY,
    Bundle,
    Double,
    Impulse,
    Int64,
    Message,
    OscEncodeError,
    TimeTag,
)

_ADDRS: dict[str, bytes] = {}
_EncodePlan = Callable[[Sequence[Any]], bytes]
_EPLANS: dict[tuple[type, ...], _EncodePlan] = {}
# Types whose tag follows from the type alone (bool and arrays depend on the value).
_TYPE_TAG: dict[type, str] = {
    int: "i",
    float: "f",
    str: "s",
    bytes: "b",
    bytearray: "b",
    memoryview: "b",
    Int64: "h",
    Double: "d",
    TimeTag: "t",
    type(None): "N",
    Impulse: "I",
}
_PACK_CODE = {"i": "i", "h": "q", "f": "f", "d": "d", "t": "Q", "r": "I"}


def _encode_address(address: str) -> bytes:
    if not isinstance(address, str) or not address.startswith("/"):
        raise OscEncodeError(f"OSC address must be a str starting with '/', got {address!r}")
    b = _pad_string(address)
    if len(b) <= 64:  # the server's own reply addresses; a long one is not worth its memory
        if len(_ADDRS) >= _CACHE_LIMIT:
            _ADDRS.clear()
        _ADDRS[address] = b
    return b


def _pad_string(s: str) -> bytes:
    b = s.encode()
    if b.find(0) >= 0:
        raise OscEncodeError(f"OSC string contains a NUL character: {s!r}")
    return b + _STR_PAD[len(b) & 3]


def _pad_blob(v: bytes | bytearray | memoryview) -> bytes:
    b = bytes(v)
    return _I32.pack(len(b)) + b + _BLOB_PAD[len(b) & 3]


def encode_message(address: str, args: Sequence[object] = (), tags: str | None = None) -> bytes:
    """Encode a message; tags are inferred from the Python types unless ``tags`` is given."""
    head = _ADDRS.get(address)
    if head is None:
        head = _encode_address(address)
    if tags is not None:
        return head + _encode_typed(tags.removeprefix(","), args)
    sig = tuple(map(type, args))
    plan = _EPLANS.get(sig)
    if plan is not None:
        try:
            return head + plan(args)
        except (struct.error, OverflowError):
            pass  # an int beyond int32 or a float beyond float32: the slow path picks h / d
    return head + _encode_inferred(args, sig)


def _infer(v: object) -> str:
    """The type tag for one value (``[...]`` for a list or tuple)."""
    if v is True or v is False:
        return "T" if v else "F"
    tag = _TYPE_TAG.get(type(v))
    if tag is None:
        if isinstance(v, (list, tuple)):
            return "[" + "".join(_infer(x) for x in v) + "]"
        tag = next((t for base, t in _TYPE_TAG.items() if base is not int and isinstance(v, base)), None)
        if tag is None:
            if isinstance(v, numbers.Integral):
                return _infer(int(v))
            if not isinstance(v, numbers.Real):
                raise OscEncodeError(f"cannot encode {type(v).__name__} value {v!r} as an OSC argument")
            tag = "f"
    if tag == "i" and isinstance(v, int) and not -0x80000000 <= v <= 0x7FFFFFFF:
        return "h"
    if (
        tag == "f"
        and isinstance(v, numbers.Real)
        and math.isfinite(v)
        and abs(float(v)) > 3.4028234663852886e38
    ):
        return "d"
    return tag


def _encode_inferred(args: Sequence[object], sig: tuple[type, ...]) -> bytes:
    tags = "".join(_infer(v) for v in args)
    body = _encode_typed(tags, args)
    if all(t in _TYPE_TAG for t in sig) and tags == "".join(_TYPE_TAG[t] for t in sig):
        if len(_EPLANS) >= _CACHE_LIMIT:
            _EPLANS.clear()
        _EPLANS[sig] = _make_encode_plan(tags)
    return body


_STRS: dict[str, bytes] = {}


def _str_bytes(s: str) -> bytes:
    """Padded OSC-string bytes of ``s``; short strings (keys, names) are cached."""
    b = _pad_string(s)
    if len(b) <= 64:
        if len(_STRS) >= _CACHE_LIMIT:
            _STRS.clear()
        _STRS[s] = b
    return b


def _make_encode_plan(tags: str) -> _EncodePlan:
    """Generate a function encoding the type tag string and arguments of one cacheable signature.

    Runs of fixed-size values are packed by one precompiled struct; strings come from a cache.
    The generated code only names arguments ``a0..aN`` and the helpers in ``env``.
    """
    tagb = _pad_string("," + tags)
    if not tags:
        return lambda args: tagb
    names = ", ".join(f"a{i}" for i in range(len(tags)))
    strs = [i for i, c in enumerate(tags) if c == "s"]
    if len(strs) >= 2 and "b" not in tags:
        return _make_template_plan(tags, tagb, names, strs)
    env: dict[str, Any] = {"TAG": tagb, "G": _STRS.get, "M": _str_bytes, "B": _pad_blob}
    parts = ["TAG"]
    for m in re.finditer(r"[ihfdtr]+|[sbNI]", tags):
        run, lo = m.group(), m.start()
        if run == "s":
            parts.append(f"(G(a{lo}) or M(a{lo}))")
        elif run == "b":
            parts.append(f"B(a{lo})")
        elif run not in ("N", "I"):
            env[f"P{lo}"] = struct.Struct(">" + "".join(_PACK_CODE[c] for c in run)).pack
            parts.append(f"P{lo}({', '.join(f'a{i}' for i in range(lo, m.end()))})")
    exec(f"def plan(args):\n    {names}, = args\n    return b''.join(({', '.join(parts)},))", env)
    plan: _EncodePlan = env["plan"]
    return plan


def _make_template_plan(tags: str, tagb: bytes, names: str, strs: list[int]) -> _EncodePlan:
    """Like :func:`_make_encode_plan`, for signatures with several strings (key/value replies).

    The strings of such replies mostly repeat, so each distinct tuple of them gets one struct
    (strings as fixed-width ``s`` fields) and a single ``pack`` call encodes the whole body.
    """
    cache: dict[tuple[str, ...], tuple[Callable[..., bytes], tuple[bytes, ...]]] = {}

    def miss(key: tuple[str, ...]) -> tuple[Callable[..., bytes], tuple[bytes, ...]]:
        padded = tuple(_pad_string(s) for s in key)
        width = iter(len(b) for b in padded)
        fmt = "".join(f"{next(width)}s" if c == "s" else _PACK_CODE.get(c, "") for c in tags)
        if len(cache) >= 256:
            cache.clear()
        entry = cache[key] = (struct.Struct(">" + fmt).pack, padded)
        return entry

    key = "".join(f"a{i}, " for i in strs)
    padded = "".join(f"b{i}, " for i in strs)
    args = ", ".join(f"b{i}" if c == "s" else f"a{i}" for i, c in enumerate(tags) if c not in "NI")
    src = f"def plan(args):\n    {names}, = args\n    k = ({key})\n    pack, ({padded}) = C(k) or MISS(k)\n"
    env: dict[str, Any] = {"TAG": tagb, "C": cache.get, "MISS": miss}
    exec(src + f"    return TAG + pack({args})", env)
    plan: _EncodePlan = env["plan"]
    return plan


def _enc_str(v: object) -> bytes:
    if not isinstance(v, str):
        raise TypeError("not a str")
    return _pad_string(v)


def _enc_blob(v: object) -> bytes:
    if not isinstance(v, (bytes, bytearray, memoryview)):
        raise TypeError("not bytes")
    return _pad_blob(v)


def _enc_char(v: object) -> bytes:
    if not isinstance(v, str) or len(v) != 1:
        raise TypeError("not a single character")
    return _I32.pack(ord(v))


def _enc_midi(v: object) -> bytes:
    if not isinstance(v, (bytes, tuple, list)) or len(v) != 4:
        raise TypeError("not 4 bytes")
    return bytes(v)


_ENCODERS: dict[str, Callable[[Any], bytes]] = {c: struct.Struct(">" + k).pack for c, k in _PACK_CODE.items()}
_ENCODERS.update(s=_enc_str, S=_enc_str, b=_enc_blob, c=_enc_char, m=_enc_midi)
_END = object()


def _encode_typed(tags: str, args: Sequence[object]) -> bytes:
    """Type tag string and arguments for explicit ``tags``; arrays are given as nested lists/tuples."""
    out = [_pad_string("," + tags)]
    if _encode_values(tags, 0, args, out, False) != len(tags):
        raise OscEncodeError(f"unbalanced ']' in type tags {tags!r}")
    return b"".join(out)


def _encode_values(tags: str, pos: int, args: Sequence[object], out: list[bytes], inner: bool) -> int:
    """Encode ``args`` along ``tags`` from ``pos`` (up to the matching ']' if ``inner``); returns the stop."""
    it = iter(args)
    while pos < len(tags):
        c = tags[pos]
        pos += 1
        if c == "]":
            if not inner:
                return pos - 1
            break
        v = next(it, _END)
        if v is _END:
            raise OscEncodeError(f"too few arguments for type tags {tags!r}")
        if c == "[":
            if not isinstance(v, (list, tuple)):
                raise OscEncodeError(f"'[' needs a list or tuple, got {type(v).__name__}")
            pos = _encode_values(tags, pos, v, out, True)
        elif c in _CONST:
            if v is not _CONST[c] and not (c == "I" and v is None):
                raise OscEncodeError(f"'{c}' needs {_CONST[c]!r}, got {v!r}")
        elif c not in _ENCODERS:
            raise OscEncodeError(f"unknown type tag {c!r}")
        else:
            try:
                out.append(_ENCODERS[c](v))
            except (struct.error, OverflowError, TypeError) as exc:
                raise OscEncodeError(f"'{c}' cannot encode {type(v).__name__} value {v!r} ({exc})") from None
    else:
        if inner:
            raise OscEncodeError(f"unclosed '[' in type tags {tags!r}")
    if next(it, _END) is not _END:
        raise OscEncodeError(f"too many arguments for type tags {tags!r}")
    return pos


class PackedReply(tuple[str, tuple[Any, ...]]):
    """An ``(address, args)`` reply that carries its encoded packet (see :class:`MessageTemplate`).

    It is still the plain pair to whoever unpacks it; a transport sends ``packet`` as it is.
    """

    packet: bytes

    def __new__(cls, address: str, args: tuple[Any, ...], packet: bytes) -> PackedReply:
        self = super().__new__(cls, (address, args))
        self.packet = packet
        return self


class MessageTemplate:
    """A message whose layout is fixed: constants encoded once, numbers filled in per call.

    ``pattern`` lists the arguments: ``int`` or ``float`` (the types themselves) mark a slot,
    anything else is a constant (str, int, float).  ``encode(*slots)`` is one precompiled
    ``struct`` call, ~10x faster than :func:`encode_message` for a key/value reply that monitors
    poll thousands of times a second (``/status``).  A slot value the template's type cannot
    hold (an int beyond int32, a float beyond float32) falls back to :func:`encode_message`,
    which widens it to ``h`` / ``d``.
    """

    def __init__(self, address: str, pattern: Sequence[object]) -> None:
        self.address = address
        self._pattern = tuple(pattern)
        tags: list[str] = []
        fmt: list[str] = []
        env: dict[str, Any] = {}
        call: list[str] = []
        slots: list[str] = []
        for i, p in enumerate(self._pattern):
            if p is int or p is float:
                tag = "i" if p is int else "f"
                tags.append(tag)
                fmt.append(tag)
                call.append(f"v{len(slots)}")
                slots.append(f"v{len(slots)}")
                continue
            tag = _infer(p)
            if tag not in "sifhd" or len(tag) != 1:
                raise OscEncodeError(f"a template constant must be a str, int or float, got {p!r}")
            b = _pad_string(p) if tag == "s" else _ENCODERS[tag](p)  # type: ignore[arg-type]
            tags.append(tag)
            fmt.append(f"{len(b)}s")
            env[f"C{i}"] = b
            call.append(f"C{i}")
        self.slots = len(slots)
        env["HEAD"] = _pad_string(address) + _pad_string("," + "".join(tags))
        env["PACK"] = struct.Struct(">" + "".join(fmt)).pack
        values = [f"K{i}" for i in range(len(self._pattern))]
        for i, p in enumerate(self._pattern):
            if p is int or p is float:
                values[i] = call[i]
            else:
                env[f"K{i}"] = p
        params = ", ".join(slots)
        exec(f"def encode({params}):\n    return HEAD + PACK({', '.join(call)})\n"
             f"def args({params}):\n    return ({', '.join(values)},)", env)
        self._fast: Callable[..., bytes] = env["encode"]
        #: ``args(*slots)``: the full argument tuple with the slots filled in.
        self.args: Callable[..., tuple[object, ...]] = env["args"]

    def encode(self, *slots: object) -> bytes:
        """The encoded message with ``slots`` filled in, in order."""
        try:
            return self._fast(*slots)
        except (struct.error, OverflowError):
            return encode_message(self.address, self.args(*slots))


def encode_bundle(timetag: TimeTag | float | None, elements: Iterable[bytes | Message | Bundle]) -> bytes:
    """Encode a bundle; ``timetag`` is a :class:`TimeTag`, a Unix time (float) or None (immediately).

    Elements may be already-encoded packets (bytes) or :class:`Message`/:class:`Bundle` values.
    """
    if timetag is None:
        tt = IMMEDIATELY
    elif isinstance(timetag, TimeTag):
        tt = timetag
    else:
        tt = TimeTag.from_unix(timetag)
    out = [_BUNDLE_HEAD, _U64.pack(tt)]
    for el in elements:
        b = el if isinstance(el, bytes) else encode_packet(el)
        if not b or len(b) & 3:
            raise OscEncodeError(f"bundle element of {len(b)} bytes is not a non-empty multiple of 4")
        out.append(_I32.pack(len(b)))
        out.append(b)
    return b"".join(out)


def encode_packet(packet: Message | Bundle) -> bytes:
    """Encode a :class:`Message` (its ``tags`` used when not empty) or a :class:`Bundle`."""
    if isinstance(packet, Bundle):
        return encode_bundle(packet.timetag, packet.elements)
    if packet.tags or not packet.args:
        return encode_message(packet.address, packet.args, packet.tags)
    return encode_message(packet.address, packet.args)
