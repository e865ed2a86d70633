"""Fuzzing the OSC decoder and the TCP framers (hypothesis; see tests/fuzz_profiles.py).

Decoder: any bytes, and valid packets mutated (bytes flipped, cut, extended, spliced), decode to a
Message or Bundle or raise OscDecodeError, nothing else; what decodes re-encodes to the same bytes;
the cached fast path and the checked slow path agree. Framers: a byte stream split anywhere yields
the frames, rejections and closes of the same stream unsplit; garbage is rejected through the
connection's own malformed-packet path, and its buffer stays bounded.
"""

from __future__ import annotations

import asyncio
import math
import random
import struct
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from fuzz_profiles import PROFILE, count, examples
from timbrespace.protocol import codec
from timbrespace.protocol.codec import IMPULSE, Bundle, Message, OscDecodeError, TimeTag, decode_packet
from timbrespace.protocol.encode import encode_bundle, encode_message, encode_packet
from timbrespace.protocol.peer import Peer, TransportStats
from timbrespace.protocol.tcp import TcpConnection

# --------------------------------------------------------------------------- valid packets

_F32 = st.floats(width=32, allow_nan=False)
# Values whose decode gives back exactly what was encoded, by tag (NaN is left to the mutations:
# a float32 NaN's payload does not survive Python's float, see _has_nan).
_SCALARS: dict[str, st.SearchStrategy[Any]] = {
    "i": st.integers(-(2**31), 2**31 - 1),
    "h": st.integers(-(2**63), 2**63 - 1),
    "f": _F32,
    "d": st.floats(allow_nan=False),
    "s": st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=40),
    "S": st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=8),
    "b": st.binary(max_size=40),
    "t": st.integers(0, 2**64 - 1).map(TimeTag),
    "r": st.integers(0, 2**32 - 1),
    "c": st.characters(blacklist_categories=("Cs",)),
    "m": st.tuples(*[st.integers(0, 255)] * 4),
    "T": st.just(True),
    "F": st.just(False),
    "N": st.just(None),
    "I": st.just(IMPULSE),
}


@st.composite
def _typed(draw: st.DrawFn, depth: int = 0) -> tuple[Any, str]:
    """One (value, tags) pair; arrays nest two deep."""
    if depth < 2 and draw(st.integers(0, 9)) == 0:
        items = draw(st.lists(_typed(depth + 1), max_size=4))
        return [v for v, _ in items], "[" + "".join(t for _, t in items) + "]"
    tag = draw(st.sampled_from(sorted(_SCALARS)))
    return draw(_SCALARS[tag]), tag


_ADDRESS = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=30).map(
    lambda s: "/" + s
)


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    items = draw(st.lists(_typed(), max_size=8))
    return encode_message(draw(_ADDRESS), [v for v, _ in items], "".join(t for _, t in items))


packets: st.SearchStrategy[bytes] = st.recursive(
    messages(),
    lambda inner: st.builds(encode_bundle, st.integers(0, 2**64 - 1).map(TimeTag), st.lists(inner, max_size=4)),
    max_leaves=8,
)

# --------------------------------------------------------------------------- mutations

_OPS = st.one_of(
    st.tuples(st.just("set"), st.integers(0, 1 << 16), st.integers(0, 255)),
    st.tuples(st.just("flip"), st.integers(0, 1 << 16), st.integers(0, 7)),
    st.tuples(st.just("cut"), st.integers(0, 1 << 16), st.just(0)),
    st.tuples(st.just("del"), st.integers(0, 1 << 16), st.integers(1, 8)),
    st.tuples(st.just("ins"), st.integers(0, 1 << 16), st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("int"), st.integers(0, 1 << 16),
              st.sampled_from([0, 1, 3, 4, 0x7FFFFFFF, -1, -4, -(2**31), 2**31 - 4, 1 << 16])),
)


def mutate(data: bytes, ops: list[tuple[str, int, Any]]) -> bytes:
    """Apply byte-level mutations; positions wrap around the current length."""
    b = bytearray(data)
    for op, pos, arg in ops:
        at = pos % (len(b) + 1)
        if op == "set" and b:
            b[at % len(b)] = arg
        elif op == "flip" and b:
            b[at % len(b)] ^= 1 << arg
        elif op == "cut":
            del b[at:]
        elif op == "del":
            del b[at : at + arg]
        elif op == "ins":
            b[at:at] = arg
        elif op == "int":  # a size or count field: the interesting values
            b[at : at + 4] = struct.pack(">i", arg)
    return bytes(b)


# --------------------------------------------------------------------------- properties


def _has_nan(p: Message | Bundle | list[Any] | tuple[Any, ...] | object) -> bool:
    if isinstance(p, Bundle):
        return any(_has_nan(e) for e in p.elements)
    if isinstance(p, Message):
        return _has_nan(p.args)
    if isinstance(p, list | tuple):
        return any(_has_nan(v) for v in p)
    return isinstance(p, float) and math.isnan(p)


def _outcome(data: bytes) -> tuple[str, bytes | str]:
    """What decoding gives: the packet (re-encoded, so NaN compares) or the error's text."""
    try:
        p = decode_packet(data)
    except OscDecodeError as e:
        return "error", str(e)
    assert isinstance(p, Message | Bundle), f"decode gave {type(p).__name__}"
    return "ok", encode_packet(p)


def _uncached(data: bytes) -> tuple[str, bytes | str]:
    """:func:`_outcome` with the decoder's header cache emptied first: the checked slow path."""
    plans = getattr(codec, "_PLANS", None)
    if isinstance(plans, dict):
        plans.clear()
    return _outcome(data)


def check_decode(data: bytes) -> None:
    """The decoder's contract on one input (any exception but OscDecodeError fails the test)."""
    first = _outcome(data)
    if first[0] == "ok":
        again = decode_packet(first[1])  # type: ignore[arg-type]
        assert encode_packet(again) == first[1], "a re-encoded packet does not re-encode to itself"
        if not _has_nan(again):
            assert first[1] == data, "a packet that decodes does not re-encode to the same bytes"
    # The header is cached now (when it was valid): the fast path must say what the slow one says.
    assert _outcome(data) == first
    assert _uncached(data) == first


@examples(300, 5_000)
@given(packets)
def test_valid_packets_round_trip(data: bytes) -> None:
    count("decode: valid packets")
    p = decode_packet(data)
    assert isinstance(p, Message | Bundle)
    assert encode_packet(p) == data
    check_decode(data)


@examples(500, 100_000)
@given(st.binary(max_size=256))
@example(b"")
@example(b"/\x00\x00\x00")
@example(b"#bundle\x00")
def test_arbitrary_bytes_decode_or_raise_decode_error(data: bytes) -> None:
    count("decode: random bytes")
    check_decode(data)


@examples(500, 5_000)
@given(packets, st.lists(_OPS, min_size=1, max_size=6), st.lists(packets, max_size=1))
def test_mutated_packets_decode_or_raise_decode_error(data: bytes, ops: list[tuple[str, int, Any]],
                                                       splice: list[bytes]) -> None:
    check_decode(data)  # primes the header cache with the valid packet, as a client's first one would
    mutated = mutate(data, ops)
    if splice:  # the head of one packet on the tail of another
        mutated = mutated[: len(mutated) // 2] + splice[0][len(splice[0]) // 2 :]
    count("decode: mutated packets")
    check_decode(mutated)


# --------------------------------------------------------------------------- TCP framers

MAX_PACKET = 64


class FakeTransport(asyncio.Transport):
    """The asyncio transport a TcpConnection writes to and closes, recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.closing = False
        self.paused = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 50000) if name == "peername" else default

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True

    def can_write_eof(self) -> bool:
        return False

    def write_eof(self) -> None:
        self.closing = True

    def write(self, data: bytes) -> None:
        self.written.append(bytes(data))

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False


def feed(framing: str, chunks: list[bytes]) -> tuple[list[tuple[str, bytes | str]], bool, int]:
    """Feed ``chunks`` to a fresh connection; returns (events in order, closed, most bytes buffered)."""
    events: list[tuple[str, bytes | str]] = []
    conn = TcpConnection(1, framing, MAX_PACKET, TransportStats(), {},  # type: ignore[arg-type]
                         lambda data, peer, t: events.append(("packet", data)),
                         lambda peer, reason: events.append(("malformed", reason)))
    t = FakeTransport()
    conn.connection_made(t)  # type: ignore[arg-type]
    buffered = 0
    for c in chunks:
        conn.data_received(c)
        buffered = max(buffered, len(getattr(conn, "_buf", b"")))
    conn.connection_lost(None)
    assert isinstance(conn.peer, Peer)
    return events, t.closing, buffered


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)])]


def slip(packet: bytes) -> bytes:
    return b"\xc0" + packet.replace(b"\xdb", b"\xdb\xdd").replace(b"\xc0", b"\xdb\xdc") + b"\xc0"


def length(packet: bytes) -> bytes:
    return len(packet).to_bytes(4, "big") + packet


_FRAME = st.binary(max_size=MAX_PACKET).map(lambda b: b + b"\xc0\xdb" if len(b) % 3 == 0 else b)


@examples(300, 10_000)
@given(st.lists(_FRAME, max_size=8), st.lists(st.integers(0, 1 << 12), max_size=12),
       st.sampled_from(["slip", "length"]))
def test_framed_packets_arrive_whole_however_split(frames: list[bytes], cuts: list[int], framing: str) -> None:
    count("tcp framers: framed streams, split")
    frames = [f[:MAX_PACKET] for f in frames]
    stream = b"".join(map(slip if framing == "slip" else length, frames))
    whole = feed(framing, [stream])
    assert feed(framing, _split(stream, cuts))[:2] == whole[:2]
    want = [("packet", f) for f in frames if f or framing == "length"]  # SLIP skips empty frames
    assert whole[0] == want and not whole[1]


@examples(400, 20_000)
@given(st.binary(max_size=600), st.lists(st.integers(0, 1 << 12), max_size=12), st.sampled_from(["slip", "length"]))
@example(b"\x00\x00\x00\x05abc", [], "length")
@example(b"\xff\xff\xff\xff", [], "length")
@example(b"\xdb\xc0\xdbx\xc0", [1], "slip")
@example(b"a" * 200 + b"\xc0", [100], "slip")
def test_garbage_is_rejected_through_the_malformed_path(data: bytes, cuts: list[int], framing: str) -> None:
    count("tcp framers: garbage streams")
    events, closed, buffered = feed(framing, _split(data, cuts))
    limit = 2 * MAX_PACKET if framing == "slip" else MAX_PACKET + 4
    assert buffered <= limit, f"{buffered} bytes buffered, more than a frame's {limit}"
    for kind, what in events:
        if kind == "packet":
            assert isinstance(what, bytes) and len(what) <= MAX_PACKET
        else:
            assert isinstance(what, str) and 0 < len(what) <= 200
    if closed:  # a fatal framing error: its rejection is the last thing that happened
        assert events and events[-1][0] == "malformed"
    # Splitting changes nothing where no frame outgrows the buffer before its end is seen
    # (SLIP must decide on an endless frame before its END arrives; length prefixes say it first).
    if framing == "length" or all(len(run) <= 2 * MAX_PACKET for run in data.split(b"\xc0")):
        assert (events, closed) == feed(framing, [data])[:2]


@pytest.mark.parametrize("framing", ["slip", "length"])
def test_fake_transport_matches_the_framers_needs(framing: str) -> None:
    """The fake above is what TcpConnection uses: a good frame arrives, a bad one is rejected."""
    frame = encode_message("/status")
    events, closed, _ = feed(framing, [(slip if framing == "slip" else length)(frame)])
    assert events == [("packet", frame)] and not closed


#: Mutants decoded per example by the burst test: most of the long run's inputs come from here.
BURST = 1000 if PROFILE == "long" else 40


@examples(60, 1_000)
@given(packets, st.integers(0, 2**32))
def test_mutation_bursts_decode_or_raise_decode_error(data: bytes, seed: int) -> None:
    """Many cheap mutants of one valid packet (hypothesis draws the packet, a seeded RNG the edits)."""
    rng = random.Random(seed)  # not st.randoms: hypothesis would record every draw and overrun
    check_decode(data)
    count("decode: mutation bursts", BURST)
    for _ in range(BURST):
        check_decode(mutate(data, [_random_op(rng) for _ in range(rng.randint(1, 4))]))


def _random_op(rng: random.Random) -> tuple[str, int, Any]:
    op, pos = rng.choice(["set", "flip", "cut", "del", "ins", "int"]), rng.randrange(1 << 16)
    arg = {"set": rng.randrange(256), "flip": rng.randrange(8), "cut": 0, "del": rng.randint(1, 8),
           "ins": rng.randbytes(rng.randint(1, 8)), "int": rng.choice([0, 1, 3, 4, -1, -4, 0x7FFFFFFF, 1 << 16])}
    return op, pos, arg[op]
