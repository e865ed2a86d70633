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
from hypothesis.stateful import RuleBasedStateMachine, rule, run_state_machine_as_test

from fuzz_profiles import count, examples
from timbrespace import config
from timbrespace.app import App, ServerInfo
from timbrespace.engines.base import Engine
from timbrespace.engines.patch import PatchEngine
from timbrespace.engines.registry import Wiring
from timbrespace.engines.timbre import TimbreEngine
from timbrespace.engines.timbre_setup import PreparedTimbre, prepare
from timbrespace.models.patch_space import PatchSpace
from timbrespace.patch import params
from timbrespace.patch.library import PresetLibrary
from timbrespace.protocol import addresses, declaration
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
    timbre: PreparedTimbre
    tmp: Path


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    cfg = config.load(None)
    cfg.state.persist = False
    tmp = tmp_path_factory.mktemp("fuzz")
    cfg.patch.user_bank = tmp / "user.amSynth.bank"
    timbre = prepare(cfg, cfg.inference.device)
    if not isinstance(timbre, PreparedTimbre):
        pytest.skip("no timbre model")
    return Models(cfg, PatchSpace.load(cfg.patch.model, device="cpu", num_threads=1), timbre, tmp)


@dataclass
class Rig:
    """An App with both engines on a virtual clock, as render_score builds it."""

    app: App
    link: LocalLink
    patch: PatchEngine
    timbre: TimbreEngine
    frames: Any
    now: list[float] = field(default_factory=lambda: [0.0])
    #: Commands are dropped after each message (no audio side), else left for a Player.
    drain: bool = True
    #: What the messages sent count as (fuzz_profiles.count).
    target: str = "app: single messages"

    @property
    def engines(self) -> list[Engine]:
        return [self.patch, self.timbre]


def build(m: Models, user_bank: Path | None = None, library: PresetLibrary | None = None,
          frames: Any = None) -> Rig:
    """A fresh App and engines on the loaded models (a fresh user bank, or a library shared)."""
    from timbrespace.link.frames import FrameSlots

    cfg = m.cfg
    now = [0.0]
    link = LocalLink()
    library = library or PresetLibrary(cfg.patch.banks, user_bank or cfg.patch.user_bank)
    patch = PatchEngine(m.patch, library, link, block_period=BS / SR, clock=lambda: now[0])
    shape = m.timbre.audio().frames
    assert shape is not None
    frames = frames or FrameSlots(shape.slots, shape.table_size, shape.n_noise)
    timbre = m.timbre.build(Wiring(link, SR, BS / SR, frames, clock=lambda: now[0]), None)
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


def _number(arg: declaration.Arg, integral: bool) -> st.SearchStrategy[Any]:
    """Numbers in, at and just beyond an argument's range, as ints or floats."""
    lo = -1e6 if arg.lo is None else arg.lo
    hi = 1e6 if arg.hi is None else arg.hi
    edges = [lo, hi, lo - 1, hi + 1, (lo + hi) / 2]
    ints = st.one_of(st.integers(int(lo) - 2, int(hi) + 2), st.sampled_from([int(e) for e in edges]))
    if integral:
        return st.one_of(ints, ints.map(float), st.floats(lo - 1, hi + 1))
    return st.one_of(st.floats(lo - 0.5, hi + 0.5), st.sampled_from(edges), ints, _ODD_FLOATS)


def _value(address: str, arg: declaration.Arg, names: dict[str, list[str]]) -> st.SearchStrategy[Any]:
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

    def to(decl: declaration.Address) -> st.SearchStrategy[tuple[str, tuple[Any, ...]]]:
        right = st.tuples(*[_value(decl.path, a, names) for a in decl.args]) if decl.args else st.just(())
        wrong = st.lists(_ANY, max_size=len(decl.args) + 2).map(tuple)
        return st.tuples(st.just(decl.path), st.one_of(right, right, right, wrong))

    declared = st.sampled_from(addresses.ADDRESSES).flatmap(to)
    other = st.tuples(st.one_of(st.sampled_from(sorted(addresses.REPLY_ADDRESSES)), _TEXT.map(lambda s: "/" + s),
                                _ODD_TEXT), st.lists(_ANY, max_size=3).map(tuple))
    return st.one_of(declared, declared, declared, other)


# --------------------------------------------------------------------------- validation alone

#: The longest reason validation may give (/param's unknown name lists the 41 parameters).
MAX_REASON_CHARS = 1200
_NAMES_FOR_PARSE = {"preset": ["BriansBank01/basic11", "basic11"], "instrument": ["flute", "cello"]}


def _raw_args(decl: declaration.Address) -> st.SearchStrategy[tuple[Any, ...]]:
    right = st.tuples(*[_value(decl.path, a, _NAMES_FOR_PARSE) for a in decl.args]) if decl.args else st.just(())
    return st.one_of(right, st.lists(_ANY, max_size=len(decl.args) + 2).map(tuple))


_RAW = {d.path: _raw_args(d) for d in addresses.ADDRESSES}


@examples(600, 10_000)
@given(st.sampled_from(addresses.ADDRESSES).flatmap(lambda d: st.tuples(st.just(d), _RAW[d.path])))
def test_validation_accepts_only_what_each_address_declares(case: tuple[declaration.Address, tuple[Any, ...]]) -> None:
    """Address.parse returns the declared kinds, finite and in range, or raises InvalidMessage."""
    count("validation: Address.parse")
    decl, raw = case
    try:
        values = decl.parse(raw)
    except declaration.InvalidMessage as e:
        # Bounded before any clipping: a value is repeated in at most SHOW_CHARS characters.
        assert 0 < len(str(e)) <= MAX_REASON_CHARS, f"{decl.path}: a {len(str(e))}-character reason"
        return
    assert len(values) == len(decl.args)
    for arg, v in zip(decl.args, values):
        if arg.kind == "str":
            assert type(v) is str
        elif arg.kind == "ref":
            assert type(v) is int or (type(v) is str and v)
        else:
            assert type(v) is (int if arg.kind == "int" else float), f"{decl.path} {arg.name}: {v!r}"
        if type(v) is not str:
            assert math.isfinite(v)  # type: ignore[arg-type]
            assert arg.lo is None or v >= arg.lo
            assert arg.hi is None or v <= arg.hi


# --------------------------------------------------------------------------- one message


def send(rig: Rig, address: str, args: tuple[Any, ...], secret: str = "") -> list[tuple[str, tuple[Any, ...]]]:
    """One message through the App, with every check a single message allows."""
    count(rig.target)
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
    if rig.drain:
        rig.link.queue.clear()  # no audio side here: commands are not the point
    return replies


@pytest.fixture(scope="module")
def rig(models: Models) -> Rig:
    return build(models)


def _names(m: Models, r: Rig) -> dict[str, list[str]]:
    lib = r.patch.library
    presets = [lib.qualified_name(i) for i in range(0, len(lib), max(1, len(lib) // 20))]
    return {"preset": presets + [p.split("/", 1)[1] for p in presets], "instrument": list(m.timbre.space.instruments)}


def test_every_address_with_any_arguments_succeeds_or_fails_cleanly(models: Models, rig: Rig) -> None:
    names = _names(models, rig)
    secret = str(models.tmp)

    @examples(800, 5_000)
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



# --------------------------------------------------------------------------- handler sequences

# Mostly four keys (repeats, overlaps, voice stealing), sometimes any.
_KEYS = st.one_of(st.integers(60, 63), st.integers(60, 63), st.integers(0, 127))
_UNIT = st.floats(0, 1)


class Sequences(RuleBasedStateMachine):
    """Handler sequences on the control side; after any of them, notes can all be released."""

    models: Models
    library: PresetLibrary
    names: dict[str, list[str]]
    kind = "control side"

    def __init__(self) -> None:
        super().__init__()
        self.rig = build(self.models, library=self.library, frames=self.frames())
        self.rig.target = f"app: messages in sequences ({self.kind})"
        count(f"app: sequences ({self.kind})")
        self.struck: set[int] = set()
        self.fingers: set[int] = set()  # /touch ids put down (a finger holds its note until /touch/off)

    def frames(self) -> Any:
        return None

    def send(self, address: str, *args: Any) -> list[tuple[str, tuple[Any, ...]]]:
        return send(self.rig, address, args)

    def advance(self, seconds: float) -> None:
        """Let virtual time pass: the timbre engine ticks on its grid (as render_score runs it)."""
        r = self.rig
        end = r.now[0] + seconds
        while r.now[0] < end:
            r.now[0] += BS / SR
            if r.app.engine.tick_period is not None:
                r.app.engine.tick(r.now[0])
            r.app.flush()
            self.block()

    def block(self) -> None:
        """What the audio side does with a block: nothing runs here, so its commands are dropped."""
        self.rig.link.queue.clear()

    # -- what a client does: notes often (their release is the point), the rest less ------------
    @rule(key=_KEYS, velocity=st.integers(1, 127))
    def note_on(self, key: int, velocity: int) -> None:
        self.send("/note", key, velocity)
        self.struck.add(key)

    @rule(key=_KEYS, velocity=st.integers(1, 127), glide=st.floats(0, 127))
    def note_on_and_glide(self, key: int, velocity: int, glide: float) -> None:
        self.note_on(key, velocity)
        self.send("/pitch", glide)

    @rule(key=_KEYS)
    def note_off(self, key: int) -> None:
        self.send("/note", key, 0)

    @rule(midi=st.floats(0, 127))
    def pitch(self, midi: float) -> None:
        self.send("/pitch", midi)

    @rule(name=st.sampled_from(addresses.ENGINES))
    def engine(self, name: str) -> None:
        self.send("/engine", name)

    @rule(data=st.data())
    def shape(self, data: Any) -> None:
        """One of the addresses that shape the sound (the map, presets, parameters, the timbre code)."""
        d = data.draw
        kind = d(st.sampled_from(["/latent", "/source", "/target", "/alpha", "/patch/load", "/param", "/z",
                                  "/corners", "/map"]))
        if kind == "/latent":
            self.send(kind, d(_UNIT), d(_UNIT))
        elif kind in ("/source", "/target"):
            self.send(kind, d(st.one_of(st.integers(0, 40), st.sampled_from(self.names["preset"]
                                                                             + self.names["instrument"]))))
        elif kind == "/alpha":
            self.send(kind, d(_UNIT))
        elif kind == "/patch/load":
            self.send(kind, d(st.one_of(st.integers(0, 3400), st.sampled_from(self.names["preset"]))))
        elif kind == "/param":
            p = params.spec(d(st.sampled_from(params.NAMES)))
            self.send(kind, p.name, p.minimum + d(_UNIT) * (p.maximum - p.minimum))
        elif kind == "/z":
            self.send(kind, d(st.integers(0, 70)), d(st.floats(-4, 4)))
        elif kind == "/corners":
            self.send(kind, *d(st.lists(st.integers(0, 12), min_size=4, max_size=4)))
        else:
            self.send(kind, d(st.sampled_from(addresses.MAPS)))

    @rule(which=st.sampled_from([(), ("mine",), ("all",)]))
    def panic(self, which: tuple[str, ...]) -> None:
        self.send("/panic", *which)

    @rule(seconds=st.floats(0, 0.5))
    def wait(self, seconds: float) -> None:
        self.advance(seconds)

    @rule(msg=st.data())
    def anything(self, msg: Any) -> None:
        address, args = msg.draw(message(self.names))
        if address == "/patch/save":  # the machines share one library; saving is fuzzed above
            return
        accepted = not send(self.rig, address, args)
        if accepted and address == "/note":  # a key struck or released
            self.struck.add(int(args[0]))
        elif accepted and address == "/touch":  # a finger down (or moved)
            self.fingers.add(int(args[0]))

    # -- what must hold after any of it -----------------------------------------------------------
    def held(self) -> dict[str, list[int]]:
        return {e.name: e.held() for e in self.rig.engines if e.held()}

    @rule(which=st.sampled_from(["mine", "all"]))
    def panic_releases_everything(self, which: str) -> None:
        # One client played every note here, so its own panic releases as much as everyone's.
        self.send("/panic", which)
        assert self.held() == {}, f"voices held after /panic {which}"
        self.struck.clear()

    @rule()
    def note_offs_release_everything(self) -> None:
        for key in sorted(self.struck):
            self.send("/note", key, 0)
        for finger in sorted(self.fingers):
            self.send("/touch/off", finger)
        assert self.held() == {}, (f"voices held after note-offs for every key struck ({sorted(self.struck)}) "
                                   f"and every finger lifted ({sorted(self.fingers)})")
        self.struck.clear()
        self.fingers.clear()

    @rule()
    def state_saves_and_reloads(self) -> None:
        fresh = build(self.models, library=self.library)
        for engine, other in zip(self.rig.engines, fresh.engines):
            snap = engine.snapshot()
            text = json.dumps(snap, allow_nan=False)  # what state.save_state writes
            other.restore(json.loads(text))
            assert other.snapshot() == snap, f"the {engine.name} engine's state changed through save and load"

    def teardown(self) -> None:
        self.note_offs_release_everything()


def _machine(models: Models, cls: type[Sequences], **extra: Any) -> type[Sequences]:
    library = PresetLibrary(models.cfg.patch.banks, models.tmp / "machine.amSynth.bank")
    probe = build(models, library=library)
    attrs = {"models": models, "library": library, "names": _names(models, probe), **extra}
    return type(cls.__name__, (cls,), attrs)


def test_handler_sequences_release_every_note_and_keep_a_loadable_state(models: Models) -> None:
    machine = _machine(models, Sequences)
    run_state_machine_as_test(machine, settings=examples(100, 500))


# --------------------------------------------------------------------------- the audio side too

#: Seconds after a release by which every voice must be silent: amSynth's longest amplitude
#: release (2.5 s) or the timbre voices' release, plus a margin of blocks.
RELEASE_WAIT = params.spec("amp_release").maximum + 0.5
PANIC_WAIT = 0.5  # a panic (mine or all) kills patch voices in 5 ms; timbre voices release over timbre.release (0.3 s)


class AudioSequences(Sequences):
    """The same sequences with the audio side running: pyo's synths, offline, block by block."""

    kind = "with the synths"
    renderer: Any
    synth: Any
    voices: Any
    shared_frames: Any

    def __init__(self) -> None:
        from timbrespace.audio.player import Player
        from timbrespace.link.stats import AudioStats

        super().__init__()
        self.rig.drain = False
        self.player = Player.one(self.synth, self.rig.link.mailbox, AudioStats(), self.rig.link.receive, lambda b: None,
                             timbre=self.voices)
        # The synths are shared between examples: silence what the last one left.
        self.synth.all_notes_off()
        self.voices.all_off()
        self.rig.patch.activate(0.0)
        self.advance(PANIC_WAIT)
        assert self.sounding() == 0

    def frames(self) -> Any:
        return self.shared_frames

    def sounding(self) -> int:
        return int(self.synth.active_voices + self.voices.active_voices)

    def send(self, address: str, *args: Any) -> list[tuple[str, tuple[Any, ...]]]:
        replies = super().send(address, *args)
        self.advance(BS / SR)  # the audio side takes it at the next block
        return replies

    def block(self) -> None:
        self.player.block(self.rig.now[0])
        self.renderer.process_block()

    @rule(which=st.sampled_from(["mine", "all"]))
    def panic_releases_everything(self, which: str) -> None:
        super().panic_releases_everything(which)
        self.advance(PANIC_WAIT)
        assert self.sounding() == 0, f"{self.sounding()} voices still sound {PANIC_WAIT} s after /panic {which}"

    @rule()
    def note_offs_release_everything(self) -> None:
        super().note_offs_release_everything()
        self.advance(RELEASE_WAIT)
        assert self.sounding() == 0, f"{self.sounding()} voices still sound {RELEASE_WAIT} s after the note-offs"


def test_handler_sequences_leave_no_voice_sounding_in_the_synths(models: Models) -> None:
    from timbrespace.audio.additive import AdditiveSynth
    from timbrespace.audio.offline import OfflineRenderer
    from timbrespace.audio.synth import PatchSynth
    from timbrespace.audio.timbre_voices import TimbreVoices
    from timbrespace.link.frames import FrameSlots

    plan = models.timbre.audio()
    shape = plan.frames
    assert shape is not None
    frames = FrameSlots(shape.slots, shape.table_size, shape.n_noise)
    with OfflineRenderer(sample_rate=SR, block_size=BS, channels=2) as renderer:
        synth = PatchSynth(polyphony=models.cfg.audio.polyphony, sample_rate=SR)
        additive = AdditiveSynth(shape.slots, SR, plan.settings["noise_centres_hz"], table_size=shape.table_size)
        voices = TimbreVoices(additive, frames, plan.settings["release_s"])
        machine = _machine(models, AudioSequences, renderer=renderer, synth=synth, voices=voices,
                           shared_frames=frames)
        try:
            run_state_machine_as_test(machine, settings=examples(8, 40))
        finally:
            synth.close()
            additive.close()
