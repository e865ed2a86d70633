"""Fuzzing address validation and every handler, alone and in sequences (hypothesis).

The App is the real one, built as ``timbrespace render`` builds it in-process (real models, real
engines, a LocalLink instead of the audio socket). Every message to every declared address, with
right and wrong arguments, either succeeds or gets a bounded ``/fail`` and the counters add up; an
exception a handler let out (answered ``internal error`` by the App's safety net) fails the test.
Then a rule-based state machine plays handler sequences; after any of them ``/panic``, and
separately note-offs for every key struck, leave no voice held on the control side, and each
engine's state saves to JSON and loads back unchanged. The audio side (the pyo synths, offline)
is checked by a smaller machine of its own.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from fuzz_profiles import examples
from timbrespace import config
from timbrespace.app import App, ServerInfo
from timbrespace.engines.base import Engine
from timbrespace.engines.patch import PatchEngine
from timbrespace.engines.timbre import TimbreEngine
from timbrespace.models.patch_space import PatchSpace
from timbrespace.models.timbre_space import TimbreSpace
from timbrespace.patch import params
from timbrespace.patch.library import PresetLibrary
from timbrespace.protocol import addresses
from timbrespace.protocol.codec import IMPULSE, TimeTag
from timbrespace.protocol.encode import encode_message
from timbrespace.protocol.peer import Incoming, Peer
from timbrespace.protocol.replies import FAIL_ADDRESS_BYTES, FAIL_REASON_BYTES, REQUEST_REPLY_BUDGET
from timbrespace.render import LocalLink

pytestmark = pytest.mark.numeric

SR, BS = 48000, 256
PEER = Peer("udp", "127.0.0.1", 50000)


@dataclass
class Models:
    """What takes seconds to load, loaded once per module."""

    cfg: config.Config
    patch: PatchSpace
    timbre: TimbreSpace
    tmp: Path


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    from timbrespace.server import load_timbre

    cfg = config.load(None)
    cfg.state.persist = False
    tmp = tmp_path_factory.mktemp("fuzz")
    cfg.patch.user_bank = tmp / "user.amSynth.bank"
    tspace = load_timbre(cfg)
    if tspace is None:
        pytest.skip("no timbre model")
    return Models(cfg, PatchSpace.load(cfg.patch.model, device="cpu", num_threads=1), tspace, tmp)


@dataclass
class Rig:
    """An App with both engines on a virtual clock, as render_score builds it."""

    app: App
    link: LocalLink
    patch: PatchEngine
    timbre: TimbreEngine
    frames: Any
    now: list[float] = field(default_factory=lambda: [0.0])

    @property
    def engines(self) -> list[Engine]:
        return [self.patch, self.timbre]


def build(m: Models, user_bank: Path | None = None) -> Rig:
    """A fresh App and engines on the loaded models (the user bank may be a fresh one)."""
    from timbrespace.audio.frames import FrameSlots
    from timbrespace.server import timbre_corners, timbre_layout

    cfg = m.cfg
    now = [0.0]
    link = LocalLink()
    library = PresetLibrary(cfg.patch.banks, user_bank or cfg.patch.user_bank)
    patch = PatchEngine(m.patch, library, link, block_period=BS / SR, clock=lambda: now[0])
    layout = timbre_layout(cfg, m.timbre)
    frames = FrameSlots(layout.slots, layout.table_size, len(layout.noise_centres_hz))
    timbre = TimbreEngine(m.timbre, link, frames, sample_rate=SR, corners=timbre_corners(cfg, m.timbre),
                          map_kind=cfg.timbre.map, release_s=cfg.timbre.release, clock=lambda: now[0])
    app = App([patch, timbre], link, ServerInfo("offline", SR, BS, "cpu"), clock=lambda: now[0])
    return Rig(app, link, patch, timbre, frames, now)


# --------------------------------------------------------------------------- argument strategies

# Any text an OSC string decodes to: every code point but NUL (the terminator) and lone surrogates
# (not UTF-8); controls, format and line-separator characters included.
_TEXT = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=80)
_ODD_TEXT = st.sampled_from(["", " ", "..", "../../etc/passwd", "a/b", "\u202eevil", "x\u200by", "a\u2028b",
                             "\x7f", "unused", "ÄÖÜ ☃", "é" * 65, "x" * 5000, "/" * 300, "\U0010ffff"])
_HUGE_INTS = st.sampled_from([2**31, -(2**31) - 1, 2**63, -(2**63) - 1, 2**100, -(10**300), 10**300])
_ODD_FLOATS = st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 1e-320, 1e300, -1e300, 0.5 + 2**-40])
_ANY: st.SearchStrategy[Any] = st.recursive(
    st.one_of(st.integers(), _HUGE_INTS, st.floats(), _ODD_FLOATS, _TEXT, _ODD_TEXT, st.binary(max_size=40),
              st.booleans(), st.none(), st.just(IMPULSE), st.integers(0, 2**64 - 1).map(TimeTag),
              st.tuples(*[st.integers(0, 255)] * 4)),
    lambda inner: st.lists(inner, max_size=3),
    max_leaves=4,
)


def _number(arg: addresses.Arg, integral: bool) -> st.SearchStrategy[Any]:
    """Numbers in, at and just beyond an argument's range, as ints or floats."""
    lo = -1e6 if arg.lo is None else arg.lo
    hi = 1e6 if arg.hi is None else arg.hi
    edges = [lo, hi, lo - 1, hi + 1, (lo + hi) / 2]
    ints = st.one_of(st.integers(int(lo) - 2, int(hi) + 2), st.sampled_from([int(e) for e in edges]))
    if integral:
        return st.one_of(ints, ints.map(float), st.floats(lo - 1, hi + 1))
    return st.one_of(st.floats(lo - 0.5, hi + 0.5), st.sampled_from(edges), ints, _ODD_FLOATS)


def _value(address: str, arg: addresses.Arg, names: dict[str, list[str]]) -> st.SearchStrategy[Any]:
    """Arguments of the declared kind (mostly valid), sometimes anything at all."""
    if arg.kind == "int":
        good = _number(arg, True)
    elif arg.kind == "float":
        good = _number(arg, False)
        if address == "/param":
            good = st.one_of(good, st.floats(-2, 2), st.floats(-100, 100))
    elif arg.kind == "ref":
        good = st.one_of(st.integers(-2, 200), st.sampled_from(names["preset"] + names["instrument"]), _TEXT)
    else:
        pool = {"/engine": [*addresses.ENGINES, "PATCH"], "/map": [*addresses.MAPS, ""],
                "/param": list(params.NAMES)}.get(address, [])
        good = st.one_of(st.sampled_from(pool), _TEXT, _ODD_TEXT) if pool else st.one_of(_TEXT, _ODD_TEXT)
    return st.one_of(good, good, good, _ANY)


def message(names: dict[str, list[str]]) -> st.SearchStrategy[tuple[str, tuple[Any, ...]]]:
    """A message to a declared address (right arity mostly), a reply address or an unknown one."""

    def to(decl: addresses.Address) -> st.SearchStrategy[tuple[str, tuple[Any, ...]]]:
        right = st.tuples(*[_value(decl.path, a, names) for a in decl.args]) if decl.args else st.just(())
        wrong = st.lists(_ANY, max_size=len(decl.args) + 2).map(tuple)
        return st.tuples(st.just(decl.path), st.one_of(right, right, right, wrong))

    declared = st.sampled_from(addresses.ADDRESSES).flatmap(to)
    other = st.tuples(st.one_of(st.sampled_from(sorted(addresses.REPLY_ADDRESSES)), _TEXT.map(lambda s: "/" + s),
                                _ODD_TEXT), st.lists(_ANY, max_size=3).map(tuple))
    return st.one_of(declared, declared, declared, other)


# --------------------------------------------------------------------------- one message


def send(rig: Rig, address: str, args: tuple[Any, ...], secret: str = "") -> list[tuple[str, tuple[Any, ...]]]:
    """One message through the App, with every check a single message allows."""
    before = (rig.app.counters.received, rig.app.counters.rejected, rig.app.counters.ignored)
    replies = rig.app.handle(Incoming(address, args, PEER, rig.now[0]))
    received, rejected, ignored = rig.app.counters.received, rig.app.counters.rejected, rig.app.counters.ignored
    fails = [r for r in replies if r[0] == "/fail"]
    assert received == before[0] + 1
    assert rejected == before[1] + len(fails), "a /fail not counted as rejected (or counted twice)"
    assert ignored == before[2] + (address in addresses.REPLY_ADDRESSES)
    assert len(fails) <= 1 and (not fails or len(replies) == 1), replies
    total = 0
    for reply_address, reply_args in replies:
        total += len(encode_message(reply_address, reply_args))  # every reply can be encoded
    assert total <= REQUEST_REPLY_BUDGET
    for _, (where, reason) in fails:
        assert isinstance(where, str) and isinstance(reason, str)
        assert len(where.encode("utf-8", "surrogatepass")) <= FAIL_ADDRESS_BYTES
        assert 0 < len(reason.encode("utf-8", "surrogatepass")) <= FAIL_REASON_BYTES
        assert not reason.startswith("internal error"), f"{address} {args!r}: a handler raised: {reason}"
        if secret:
            assert secret not in reason, f"{address}: the /fail reveals a server path: {reason}"
    rig.link.queue.clear()  # the audio side is not running here; commands are not the point
    return replies


@pytest.fixture(scope="module")
def rig(models: Models) -> Rig:
    return build(models)


def _names(m: Models, r: Rig) -> dict[str, list[str]]:
    lib = r.patch.library
    presets = [lib.qualified_name(i) for i in range(0, len(lib), max(1, len(lib) // 20))]
    return {"preset": presets + [p.split("/", 1)[1] for p in presets], "instrument": list(m.timbre.instruments)}


def test_every_address_with_any_arguments_succeeds_or_fails_cleanly(models: Models, rig: Rig) -> None:
    names = _names(models, rig)
    secret = str(models.tmp)

    @examples(1500)
    @given(st.lists(message(names), min_size=1, max_size=5))
    @example([("/patch/save", ("x" * 64,)), ("/patch/save", ("x" * 64,))])
    @example([("/param", ("amp_release", math.nan)), ("/param", ("nope", 0.5))])
    @example([("/sync", (2**31,)), ("/sync", (1e300,)), ("/reply/port", (70000,))])
    @example([("/z", (63, 4.0)), ("/z", (64, 0.0)), ("/corners", (0, 1, 2, 10**300))])
    def run(msgs: list[tuple[str, tuple[Any, ...]]]) -> None:
        for address, args in msgs:
            rig.now[0] += 0.003
            send(rig, address, args, secret)
            rig.app.flush()
        for e in rig.engines:  # whatever was accepted, the state is still one a JSON file holds
            json.dumps(e.snapshot(), allow_nan=False)

    run()


def test_a_full_user_bank_fails_without_revealing_its_path(models: Models, tmp_path: Path) -> None:
    """The 129th /patch/save is refused; its reason names the bank by file name, not by path."""
    r = build(models, tmp_path / "full.amSynth.bank")
    for i in range(128):
        assert send(r, "/patch/save", (f"mine {i}",))[0][0] == "/patch/save.reply"
    (fail,) = send(r, "/patch/save", ("one more",), secret=str(tmp_path))
    assert fail[0] == "/fail" and "full" in fail[1][1] and "full.amSynth.bank" in fail[1][1]

