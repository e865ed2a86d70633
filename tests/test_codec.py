"""OSC codec: cross-checked against python-osc both ways, strict decoding, time tags, fuzzing."""

from __future__ import annotations

import contextlib
import math
import random
import struct
import time
from typing import Any

import pytest
from pythonosc.osc_bundle import OscBundle
from pythonosc.osc_bundle_builder import OscBundleBuilder
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

from timbrespace.protocol.codec import (
    IMMEDIATELY,
    IMPULSE,
    NTP_DELTA,
    Bundle,
    Double,
    Int64,
    Message,
    OscDecodeError,
    OscEncodeError,
    TimeTag,
    decode_packet,
)
from timbrespace.protocol.encode import MessageTemplate, PackedReply, encode_bundle, encode_message, encode_packet


def posc(address: str, *typed: tuple[Any, str | None]) -> bytes:
    """A message built by python-osc with explicit (value, type) pairs."""
    b = OscMessageBuilder(address)
    for value, tag in typed:
        b.add_arg(value, tag)
    return b.build().dgram


def s(text: str) -> bytes:
    """An OSC-string, padded by hand."""
    raw = text.encode() + b"\x00"
    return raw + b"\x00" * (-len(raw) % 4)


TYPED_CASES: list[tuple[str, list[tuple[Any, str]]]] = [
    ("/i", [(0, "i"), (-(2**31), "i"), (2**31 - 1, "i")]),
    ("/f", [(0.5, "f"), (-1.25e-3, "f"), (3.0e38, "f")]),
    ("/s", [("", "s"), ("abc", "s"), ("abcd", "s"), ("héllo ☃", "s")]),
    ("/b", [(b"\x01", "b"), (b"\x00\xc0\xdb\xff" * 3, "b"), (bytes(range(7)), "b")]),
    ("/h", [(2**40, "h"), (-(2**63), "h"), (5, "h")]),
    ("/d", [(1.0 / 3.0, "d"), (-1e300, "d")]),
    ("/tfn", [(True, "T"), (False, "F"), (None, "N")]),
    ("/mix/a/long/address", [(1, "i"), ("x", "s"), (2.5, "f"), (b"blob!", "b"), (7, "h"), (0.1, "d")]),
    ("/arr", [([1, [2.5, "x"], "y"], ["i", ["f", "s"], "s"])]),  # type: ignore[list-item]
]


@pytest.mark.parametrize(("address", "typed"), TYPED_CASES)
def test_python_osc_to_ours(address: str, typed: list[tuple[Any, str]]) -> None:
    ours = decode_packet(posc(address, *typed))
    assert isinstance(ours, Message)
    theirs = OscMessage(posc(address, *typed))
    assert ours.address == address
    assert list(ours.args) == theirs.params


@pytest.mark.parametrize(("address", "typed"), TYPED_CASES)
def test_ours_to_python_osc(address: str, typed: list[tuple[Any, str]]) -> None:
    tags = "".join(_flat_tag(t) for _, t in typed)
    data = encode_message(address, [v for v, _ in typed], tags)
    assert data == posc(address, *typed)
    assert OscMessage(data).params == list(decode_packet(data).args)  # type: ignore[union-attr]


def _flat_tag(t: str | list[Any]) -> str:
    return t if isinstance(t, str) else "[" + "".join(_flat_tag(x) for x in t) + "]"


def test_inferred_tags_match_python_osc() -> None:
    args: list[Any] = [1, 2.5, "s", b"b", True, False, None, 2**40, [1, "x"]]
    theirs = OscMessageBuilder("/inf")
    for a in args:
        theirs.add_arg(a)
    assert encode_message("/inf", args) == theirs.build().dgram
    msg = decode_packet(encode_message("/inf", args))
    assert msg == Message("/inf", (1, 2.5, "s", b"b", True, False, None, 2**40, [1, "x"]), "ifsbTFNh[is]")


def test_explicit_wrappers_and_extra_types() -> None:
    tt = TimeTag.from_unix(1_700_000_000.25)
    data = encode_message("/w", (Double(0.1), Int64(3), tt, IMPULSE))
    msg = decode_packet(data)
    assert msg == Message("/w", (0.1, 3, tt, IMPULSE), "dhtI")
    assert isinstance(msg, Message) and isinstance(msg.args[2], TimeTag)
    extra = encode_message("/x", ("q", 0x11223344, (1, 144, 60, 100), "sym"), "crmS")
    assert decode_packet(extra) == Message("/x", ("q", 0x11223344, (1, 144, 60, 100), "sym"), "crmS")
    # python-osc skips 'c' and 'S' without consuming their bytes, so cross-check r and m alone
    assert OscMessage(encode_message("/x", (0x11223344, (1, 144, 60, 100)), "rm")).params == [
        0x11223344,
        (1, 144, 60, 100),
    ]


def test_timetag_argument_vs_python_osc() -> None:
    t = 1_700_000_123.5
    data = encode_message("/t", (TimeTag.from_unix(t),))
    (dt, fraction) = OscMessage(data).params[0]
    assert dt.timestamp() == pytest.approx(math.floor(t), abs=1e-6) or fraction == 2**31
    assert fraction == 2**31


def test_nan_and_inf_decode() -> None:
    data = encode_message("/n", (math.nan, math.inf, -math.inf, Double(math.nan)))
    a = decode_packet(data).args  # type: ignore[union-attr]
    assert math.isnan(a[0]) and a[1] == math.inf and a[2] == -math.inf and math.isnan(a[3])  # type: ignore[arg-type]


def test_float_beyond_float32_becomes_double() -> None:
    assert decode_packet(encode_message("/big", (1e300,))) == Message("/big", (1e300,), "d")


def test_timetag_conversions() -> None:
    now = time.time()
    tt = TimeTag.from_unix(now)
    assert abs(tt.to_unix() - now) < 1e-6
    assert (tt >> 32) == (int(now) + NTP_DELTA) % 2**32
    assert IMMEDIATELY == 1 and IMMEDIATELY.immediate and not tt.immediate
    after_2036 = 2**32 - NTP_DELTA + 100.5  # NTP era 1
    assert TimeTag.from_unix(after_2036).to_unix() == pytest.approx(after_2036)
    assert "IMMEDIATELY" in repr(IMMEDIATELY)


def test_bundles_nested_python_osc_to_ours() -> None:
    inner = OscBundleBuilder(time.time() + 10)  # type: ignore[arg-type]  # python-osc takes a float
    inner.add_content(OscMessageBuilder("/inner").build())
    outer = OscBundleBuilder(0)  # python-osc's IMMEDIATELY
    outer.add_content(OscMessageBuilder("/a").build())
    outer.add_content(inner.build())
    m = OscMessageBuilder("/b")
    m.add_arg(3)
    outer.add_content(m.build())
    b = decode_packet(outer.build().dgram)
    assert isinstance(b, Bundle) and b.timetag == IMMEDIATELY
    assert [type(e).__name__ for e in b.elements] == ["Message", "Bundle", "Message"]
    assert b.elements[0] == Message("/a", (), "")
    assert b.elements[2] == Message("/b", (3,), "i")
    nested = b.elements[1]
    assert isinstance(nested, Bundle) and nested.elements == (Message("/inner", (), ""),)
    assert nested.timetag.to_unix() == pytest.approx(time.time() + 10, abs=1.0)


def test_bundles_nested_ours_to_python_osc() -> None:
    t = time.time() + 5
    data = encode_bundle(
        None,
        [
            encode_message("/a", (1,)),
            Bundle(TimeTag.from_unix(t), (Message("/c", ("x",)),)),
            Message("/b", (2.5,)),
        ],
    )
    theirs = OscBundle(data)
    assert theirs.timestamp == 0  # IMMEDIATELY
    first, nested, last = list(theirs)
    assert (first.address, first.params) == ("/a", [1])
    assert (last.address, last.params) == ("/b", [2.5])
    assert nested.timestamp == pytest.approx(t, abs=1e-6)
    assert [(m.address, m.params) for m in nested] == [("/c", ["x"])]
    assert encode_packet(decode_packet(data)) == data


def test_empty_bundle_is_valid() -> None:
    assert decode_packet(encode_bundle(IMMEDIATELY, [])) == Bundle(IMMEDIATELY, ())


# --------------------------------------------------------------------------- malformed packets

BAD: list[tuple[bytes, str]] = [
    (b"", "empty packet"),
    (b"/ab", "not a multiple of 4"),
    (b"abcd", "neither an address"),
    (b"#bundlX\x00" + bytes(8), "not '#bundle"),
    (b"/abc", "address at offset 0 is not null-terminated"),
    (b"/abcd\x00\x01\x00,\x00\x00\x00", "address at offset 0: bad padding"),
    (s("/abc"), "missing type tag string"),
    (s("/abc") + s("if"), "must start with ','"),
    (s("/abc") + b",iii", "type tag string at offset 8 is not null-terminated"),
    (s("/abc") + s(",ix") + bytes(4), "unknown type tag 'x' at position 1"),
    (s("/abc") + s(",i"), "argument 0 ('i') truncated: needs 4 bytes at offset 12"),
    (s("/abc") + s(",id") + bytes(8), "argument 1 ('d') truncated: needs 8 bytes"),
    (s("/abc") + s(",i") + bytes(8), "4 trailing bytes after the last argument"),
    (s("/abc") + s(",s") + b"abcd", "argument 0 ('s') at offset 12 is not null-terminated"),
    (s("/abc") + s(",s") + b"ab\x00\x07", "argument 0 ('s') at offset 12: bad padding"),
    (s("/abc") + s(",s") + b"\xff\xfe\x00\x00", "not valid UTF-8"),
    (s("/abc") + s(",b") + struct.pack(">i", -1), "negative blob size -1"),
    (s("/abc") + s(",b") + struct.pack(">i", 9) + bytes(4), "blob of 9 bytes at offset 16 overflows"),
    (s("/abc") + s(",b") + struct.pack(">i", 1) + b"\x01\x02\x00\x00", "bad padding after blob"),
    (s("/abc") + s(",i]") + bytes(4), "unbalanced ']' at position 1"),
    (s("/abc") + s(",[i") + bytes(4), "unclosed '['"),
    (b"#bundle\x00\x00\x00\x00\x00", "shorter than its 16-byte header (missing time tag)"),
    (b"#bundle\x00" + bytes(7) + b"\x01" + struct.pack(">i", 12) + s("/a") + s(","), "size 12 overflows"),
    (b"#bundle\x00" + bytes(8) + struct.pack(">i", 6) + s("/a") + s(","), "size 6 is not a multiple of 4"),
    (b"#bundle\x00" + bytes(8) + struct.pack(">i", 0), "bundle element 0: size 0 is not positive"),
    (b"#bundle\x00" + bytes(8) + struct.pack(">i", 4) + b"/ab\x00", "bundle element 0: missing type tag"),
    (
        b"#bundle\x00"
        + bytes(8)
        + struct.pack(">i", 8)
        + s("/a")
        + s(",")
        + struct.pack(">i", 4)
        + b"xyz\x00",
        "bundle element 1: packet starts with b'x'",
    ),
]


@pytest.mark.parametrize(("data", "reason"), BAD, ids=[r for _, r in BAD])
def test_malformed_raises_with_reason(data: bytes, reason: str) -> None:
    with pytest.raises(OscDecodeError) as exc:
        decode_packet(data)
    assert reason in str(exc.value)


def test_bundle_nesting_limit() -> None:
    data = encode_message("/deep")
    for _ in range(40):
        data = encode_bundle(IMMEDIATELY, [data])
    with pytest.raises(OscDecodeError, match="nested deeper than 32"):
        decode_packet(data)


def test_cached_header_still_rejects_bad_bodies() -> None:
    """Headers are cached after the first good packet; later bad bodies must still fail precisely."""
    good_i = s("/cache") + s(",if") + struct.pack(">if", 1, 2.0)
    good_s = s("/cache/s") + s(",sb") + s("ok") + struct.pack(">i", 2) + b"xy\x00\x00"
    assert decode_packet(good_i).args == (1, 2.0)  # type: ignore[union-attr]
    assert decode_packet(good_s).args == ("ok", b"xy")  # type: ignore[union-attr]
    with pytest.raises(OscDecodeError, match=r"argument 1 \('f'\) truncated"):
        decode_packet(good_i[:-4])
    with pytest.raises(OscDecodeError, match="trailing bytes"):
        decode_packet(good_i + bytes(4))
    with pytest.raises(OscDecodeError, match="bad padding after blob"):
        decode_packet(good_s[:-1] + b"\x05")
    with pytest.raises(OscDecodeError, match=r"argument 0 \('s'\) .* bad padding"):
        decode_packet(s("/cache/s") + s(",sb") + b"ok\x00\x01" + struct.pack(">i", 0))
    assert decode_packet(good_s).args == ("ok", b"xy")  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("address", "args", "tags", "reason"),
    [
        ("nope", (), None, "must be a str starting with '/'"),
        ("/x", (object(),), None, "cannot encode object"),
        ("/x", ("a\x00b",), None, "NUL character"),
        ("/x", (2**64,), None, "cannot encode"),
        ("/x", (1,), "ii", "too few arguments"),
        ("/x", (1, 2), "i", "too many arguments"),
        ("/x", ("a",), "i", "'i' cannot encode str"),
        ("/x", (1,), "s", "'s' cannot encode int"),
        ("/x", ("ab",), "c", "'c' cannot encode str value 'ab'"),
        ("/x", (1, 2), "[i", "'\\[' needs a list"),
        ("/x", ([1, 2],), "[i]", "too many arguments"),
        ("/x", ([1],), "[i", "unclosed"),
        ("/x", (1,), "i]", "unbalanced"),
        ("/x", (1,), "", "too many arguments"),
        ("/x", (1,), "q", "unknown type tag 'q'"),
    ],
)
def test_encode_errors(address: str, args: tuple[Any, ...], tags: str | None, reason: str) -> None:
    with pytest.raises(OscEncodeError, match=reason):
        encode_message(address, args, tags)


def test_cached_encode_plan_falls_back_for_wide_values() -> None:
    assert decode_packet(encode_message("/w", (1, 1.0))) == Message("/w", (1, 1.0), "if")
    assert decode_packet(encode_message("/w", (2**35, 1e300))) == Message("/w", (2**35, 1e300), "hd")
    with pytest.raises(OscEncodeError, match="NUL"):
        encode_message("/w", ("ok", 1))
        encode_message("/w", ("o\x00k", 1))


# --------------------------------------------------------------------------- randomised cross-checks


def _random_value(rng: random.Random, depth: int = 0) -> tuple[Any, str]:
    kind = rng.choice("ifsbhdTFN[" if depth < 2 else "ifsbhdTFN")
    if kind == "i":
        return rng.randint(-(2**31), 2**31 - 1), "i"
    if kind == "f":
        return struct.unpack(">f", struct.pack(">f", rng.uniform(-1e6, 1e6)))[0], "f"
    if kind == "s":
        return "".join(rng.choice("abcxyz/é ☃") for _ in range(rng.randint(0, 9))), "s"
    if kind == "b":
        return rng.randbytes(rng.randint(1, 9)), "b"
    if kind == "h":
        return rng.randint(-(2**63), 2**63 - 1), "h"
    if kind == "d":
        return rng.uniform(-1e300, 1e300), "d"
    if kind in "TFN":
        return {"T": True, "F": False, "N": None}[kind], kind
    items = [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return [v for v, _ in items], [t for _, t in items]  # type: ignore[return-value]


def test_random_messages_both_ways() -> None:
    rng = random.Random(1234)
    for _ in range(400):
        typed = [_random_value(rng) for _ in range(rng.randint(0, 8))]
        address = "/" + "/".join(rng.choice(["a", "bb", "ccc", "dddd"]) for _ in range(rng.randint(1, 3)))
        theirs = posc(address, *typed)
        tags = "".join(_flat_tag(t) for _, t in typed)
        assert encode_message(address, [v for v, _ in typed], tags) == theirs
        decoded = decode_packet(theirs)
        assert decoded == Message(address, tuple(v for v, _ in typed), tags)
        assert OscMessage(encode_packet(decoded)).params == [v for v, _ in typed]


def test_mutated_packets_raise_only_decode_errors() -> None:
    rng = random.Random(99)
    seeds = [
        encode_message("/a/b", (1, 2.5, "str", b"blob", True, None, 2**40, Double(0.5), [1, "x"])),
        encode_bundle(
            IMMEDIATELY, [encode_message("/x", ("y",)), encode_bundle(2**40, [encode_message("/z")])]
        ),
    ]
    for _ in range(3000):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 4)):
            op = rng.random()
            if op < 0.5 and data:
                data[rng.randrange(len(data))] = rng.randrange(256)
            elif op < 0.75:
                del data[rng.randrange(len(data) + 1) :]
            else:
                data += rng.randbytes(rng.choice((1, 4)))
        with contextlib.suppress(OscDecodeError):
            decode_packet(bytes(data))


# -- templates (replies with a fixed layout) ------------------------------------------------------


def test_template_encodes_exactly_what_encode_message_does() -> None:
    t = MessageTemplate("/status.reply", ("clients", int, "engine", "patch", "sample_rate", 48000, "p99", float))
    assert t.slots == 2
    assert t.args(3, 0.25) == ("clients", 3, "engine", "patch", "sample_rate", 48000, "p99", 0.25)
    assert t.encode(3, 0.25) == encode_message("/status.reply", t.args(3, 0.25))
    msg = decode_packet(t.encode(-7, 1.5))
    assert isinstance(msg, Message)
    assert msg.address == "/status.reply" and msg.args == ("clients", -7, "engine", "patch", "sample_rate", 48000,
                                                           "p99", 1.5)


def test_template_widens_values_its_types_cannot_hold() -> None:
    t = MessageTemplate("/count", ("received", int, "peak", float))
    big = t.encode(2**40, 1e300)  # int64 and double, as encode_message infers them
    assert big == encode_message("/count", ("received", 2**40, "peak", 1e300))
    msg = decode_packet(big)
    assert isinstance(msg, Message) and msg.tags == "shsd" and msg.args[1] == 2**40


def test_template_rejects_constants_it_cannot_encode() -> None:
    with pytest.raises(OscEncodeError, match="template constant"):
        MessageTemplate("/x", ("a", [1, 2]))


def test_packed_reply_is_still_the_address_and_args_pair() -> None:
    t = MessageTemplate("/a", ("k", int))
    r = PackedReply("/a", t.args(1), t.encode(1))
    address, args = r
    assert (address, args) == ("/a", ("k", 1)) and r.packet == encode_message("/a", ("k", 1))


def test_plan_cache_bounded_in_bytes_and_count() -> None:
    """Issue 14: each distinct header cached a generated decoder (~5 MB for 21,600 tags), 4,096 of them."""
    import tracemalloc

    from timbrespace.protocol import codec

    # worst-case cacheable headers: long addresses, the most tags, all of them generated code
    packets = [encode_message(f"/{n:0>470}", ("x", b"y") * (codec.PLAN_MAX_TAGS // 2)) for n in range(700)]
    codec._PLANS.clear()
    codec._plan_bytes = 0
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for m in packets:
            for _ in range(codec.PLAN_HOT):  # the last decode generates the code
                assert decode_packet(m).args == ("x", b"y") * (codec.PLAN_MAX_TAGS // 2)
        grown = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert len(codec._PLANS) < 700  # evicted by bytes before the count limit
    assert len(codec._PLANS) <= codec.PLAN_CACHE
    assert grown < 2 * codec.PLAN_BYTES
    huge = encode_message("/y", (1, True) * 10800)  # past PLAN_MAX_TAGS: decoded linearly, never cached
    assert decode_packet(huge).args == (1, True) * 10800
    assert huge[:8] not in b"".join(codec._PLANS)
    assert all(len(p.tags) <= codec.PLAN_MAX_TAGS for p in codec._PLANS.values())
