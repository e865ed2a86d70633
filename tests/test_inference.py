"""The inference worker: model calls off the event loop, batched, coalesced, in the loop's order.

Real threads, a real event loop, the shipped models and the real engines. Where a test needs a
decode to take long, the worker is held on an Event the test controls (a job of a kind that waits
on it, run in the same batch or just before): what the loop does meanwhile is then certain, not
a matter of timing.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from timbrespace import config
from timbrespace.app import App, ServerInfo
from timbrespace.engines.base import HandlerError
from timbrespace.engines.inference import Job, WorkerInference
from timbrespace.engines.patch import PatchEngine
from timbrespace.engines.patch_setup import PreparedPatch
from timbrespace.engines.registry import Wiring
from timbrespace.engines.timbre import TimbreEngine
from timbrespace.link import commands as C
from timbrespace.link.frames import FrameSlots
from timbrespace.link.mailbox import PatchMailbox
from timbrespace.models.patch_space import PatchSpace
from timbrespace.models.timbre_space import TimbreSpace
from timbrespace.patch import params
from timbrespace.patch.library import PresetLibrary
from timbrespace.protocol.transport import Incoming, Peer
from timbrespace.render import parse_score, render_score
from timbrespace.session.context import local

from conftest import assert_same_patch

pytestmark = pytest.mark.numeric

SR, BS = 48000, 256
PEER = Peer("udp", "127.0.0.1", 50000)
HANG_S = 60.0  # only a hung worker takes this long; never a pass/fail criterion on speed


class Recorder:
    """A synth link that keeps every write in order, the real patch mailbox behind it."""

    def __init__(self) -> None:
        self.log: list[tuple[str, Any]] = []
        self.mailbox = PatchMailbox()

    def send(self, data: bytes) -> bool:
        self.log.append(("cmd", C.decode(data)))
        return True

    def put_patch(self, values: npt.NDArray[np.float64], arrival: float) -> None:
        self.log.append(("patch", values.copy()))
        self.mailbox.put(values, arrival)

    def patches(self) -> list[npt.NDArray[np.float64]]:
        return [v for k, v in self.log if k == "patch"]

    def voices(self) -> list[tuple[int, float]]:
        return [(int(c.args[0]), float(c.args[1])) for k, c in self.log if k == "cmd" and c.kind is C.Kind.VOICE]


class Gate:
    """A kind of job that holds the worker until the test opens it."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.open = threading.Event()

    def run(self, inputs: Sequence[Any]) -> list[None]:
        self.entered.set()
        self.open.wait(HANG_S)
        return [None] * len(inputs)

    def submit(self, w: WorkerInference) -> None:
        w.submit(Job(self, None, lambda _: None, owner=self))

    async def held(self) -> None:
        assert await asyncio.to_thread(self.entered.wait, HANG_S), "the worker never ran the gate"


async def until(what: Callable[[], bool]) -> None:
    """Yield to the loop until ``what`` holds (a hang fails after HANG_S)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + HANG_S
    while not what():
        assert loop.time() < deadline, "the worker's results never landed"
        await asyncio.sleep(0.001)


def run(main: Callable[[WorkerInference, Recorder], Awaitable[None]]) -> None:
    """``main`` on a fresh loop with a started worker, stopped afterwards."""

    async def wrapper() -> None:
        link = Recorder()
        w = WorkerInference(link, asyncio.get_running_loop(), threads=1)
        w.start()
        try:
            await main(w, link)
        finally:
            w.stop()

    asyncio.run(wrapper())


@pytest.fixture(scope="module")
def cfg(tmp_path_factory: pytest.TempPathFactory) -> config.Config:
    c = config.load(None)
    c.patch.user_bank = tmp_path_factory.mktemp("inference") / "user.amSynth.bank"
    c.state.persist = False
    return c


@pytest.fixture(scope="module")
def space(cfg: config.Config) -> PatchSpace:
    return PatchSpace.load(cfg.patch.model, device="cpu", num_threads=1)


@pytest.fixture(scope="module")
def library(cfg: config.Config) -> PresetLibrary:
    return PresetLibrary(cfg.patch.banks, cfg.patch.user_bank)


@pytest.fixture(scope="module")
def tspace(cfg: config.Config) -> TimbreSpace:
    if not cfg.timbre.model.exists():
        pytest.skip("no timbre model")
    return TimbreSpace.load(cfg.timbre.model, device="cpu", num_threads=1)


def patch_engine(space: PatchSpace, library: PresetLibrary, w: WorkerInference) -> PatchEngine:
    return PatchEngine(space, library, w.link, block_period=BS / SR, inference=w)


def timbre_engine(tspace: TimbreSpace, w: WorkerInference, slots: int = 4) -> tuple[TimbreEngine, FrameSlots]:
    frames = FrameSlots(slots, 1024, tspace.n_noise)
    return TimbreEngine(tspace, w.link, frames, sample_rate=SR, release_s=0.2, inference=w), frames


def test_the_loop_runs_while_a_map_point_is_decoded(space: PatchSpace, library: PresetLibrary) -> None:
    async def main(w: WorkerInference, link: Recorder) -> None:
        loop = asyncio.get_running_loop()
        e = patch_engine(space, library, w)
        gate = Gate()
        gate.submit(w)
        e.handlers()["/latent"]((0.2, 0.8), local())  # in the gate's batch: its decode waits on the gate
        await gate.held()
        assert w.depth == 0  # the worker took the point: its batch is running
        ran = loop.create_future()
        loop.call_soon(lambda: ran.set_result(e.decodes))
        assert await ran == 0  # a callback scheduled during the decode ran before it completed
        assert link.patches() == []
        gate.open.set()
        await until(lambda: e.decodes == 1)
        assert_same_patch(link.patches()[-1], space.decode_unit([[0.2, 0.8]])[0])
        assert np.array_equal(e.values, link.patches()[-1])

    run(main)


def test_moves_while_the_worker_is_busy_cost_one_decode_of_the_newest(space: PatchSpace,
                                                                      library: PresetLibrary) -> None:
    async def main(w: WorkerInference, link: Recorder) -> None:
        e = patch_engine(space, library, w)
        gate = Gate()
        gate.submit(w)
        await gate.held()
        move = e.handlers()["/latent"]
        for i in range(100):
            move((i / 100.0, 0.3), local())
            await asyncio.sleep(0)
            assert w.depth == 1  # one pending point per owner, however many moves
        gate.open.set()
        await until(lambda: e.decodes == 1)
        await asyncio.sleep(0.05)  # nothing else was left to decode
        assert e.decodes == 1 and w.stats.replaced >= 99
        assert_same_patch(link.patches()[-1], space.decode_unit([[0.99, 0.3]])[0])

    run(main)


def test_a_free_running_flood_always_ends_on_its_last_point(space: PatchSpace, library: PresetLibrary) -> None:
    async def main(w: WorkerInference, link: Recorder) -> None:
        e = patch_engine(space, library, w)
        move = e.handlers()["/latent"]
        rng = random.Random(1)
        for i in range(300):
            move((rng.random(), rng.random()), local())
            if i % 7 == 0:
                await asyncio.sleep(0)
        move((0.625, 0.125), local())
        want = space.decode_unit([[0.625, 0.125]])[0]
        await until(lambda: bool(link.patches()) and np.array_equal(link.patches()[-1], e.values)
                    and w.depth == 0 and w.link.idle)
        assert e.decodes <= 301
        assert_same_patch(link.patches()[-1], want)

    run(main)


def test_sync_param_and_load_after_a_move_follow_it(space: PatchSpace, library: PresetLibrary) -> None:
    async def main(w: WorkerInference, link: Recorder) -> None:
        e = patch_engine(space, library, w)
        app = App([e], w.link, ServerInfo("offline", SR, BS, "cpu"))
        gate = Gate()
        gate.submit(w)
        await gate.held()
        for address, args in (("/latent", (0.7, 0.4)), ("/param", ("filter_cutoff", 0.25)), ("/sync", (5,)),
                              ("/note", (60, 100))):
            assert app.handle(Incoming(address, args, PEER, 0.0)) == []
        [fail] = app.handle(Incoming("/patch/save", ("too soon",), PEER, 0.0))
        assert fail[0] == "/fail" and "still being decoded; send /sync, then /patch/save again" in fail[1][1]
        assert link.log == []  # everything waits for the point
        gate.open.set()
        await until(lambda: any(k == "cmd" and c.kind is C.Kind.NOTE for k, c in link.log))
        kinds = [k if k == "patch" else c.kind.name for k, c in link.log]
        assert kinds == ["patch", "patch", "SYNC", "NOTE"]  # the move, the edit on it, then the rest
        want = space.decode_unit([[0.7, 0.4]])[0]
        want[params.INDEX["filter_cutoff"]] = 0.25
        assert_same_patch(link.patches()[-1], want)
        # A load during a decode replaces the point, whichever lands first.
        gate2 = Gate()
        gate2.submit(w)
        await gate2.held()
        e.handlers()["/latent"]((0.1, 0.1), local())
        reply = e.handlers()["/patch/load"]((3,), local())
        assert reply[0][1][0] == 3
        gate2.open.set()
        await until(lambda: w.link.idle and np.array_equal(link.patches()[-1], library[3].values))
        assert e.preset == library.qualified_name(3)

    run(main)


def test_the_layers_share_one_encoding_of_the_presets(cfg: config.Config, space: PatchSpace,
                                                      library: PresetLibrary) -> None:
    """Before: each layer's engine encoded every preset again (N layers, N passes over the
    banks). Now the prepared engine encodes once; a preset saved on one layer is encoded once by
    the worker and is a point of the map for every layer."""
    prepared = PreparedPatch(cfg, library, space)
    assert len(prepared.latents) == len(library)

    async def main(w: WorkerInference, link: Recorder) -> None:
        layer0, layer1 = (prepared.build(Wiring(w.link, SR, BS / SR, inference=w, layer=k), None) for k in (0, 1))
        e1 = layer1.handlers()
        e1["/latent"]((0.3, 0.6), local())
        await until(lambda: w.link.idle and w.depth == 0)
        [(_, (index, name, _bank))] = e1["/patch/save"](("shared by layers",), local())
        await until(lambda: index in prepared.latents)  # the worker's encoding, landed once
        assert layer0.handlers()["/source"]((name,), local()) == []
        # the same point of the map (a ten-thousandth of its side), whichever batch encoded it
        assert layer0.z_source is not None
        assert np.allclose(layer0.z_source, space.encode_latent(library[index].values[None, :])[0], atol=1e-4)

    run(main)


def test_a_note_off_never_overtakes_its_note_on(tspace: TimbreSpace) -> None:
    async def main(w: WorkerInference, link: Recorder) -> None:
        e, frames = timbre_engine(tspace, w, slots=2)
        gate = Gate()
        gate.submit(w)
        e.note(60, 100, 0.0)  # its first frame is decoded in the gate's batch
        await gate.held()
        e.note(60, 0, 0.0)  # released before it started
        assert link.voices() == [] and e.held() == []
        gate.open.set()
        await until(lambda: len(link.voices()) == 2)
        assert link.voices() == [(0, 1.0), (0, 0.0)]  # started with its frame, then released: in order
        table = np.zeros(1024, np.float32)
        noise = np.zeros(tspace.n_noise, np.float32)
        assert frames.take(0, table, noise) is not None and np.abs(table).max() > 0

    run(main)


def test_a_note_stolen_before_it_started_never_starts(tspace: TimbreSpace) -> None:
    async def main(w: WorkerInference, link: Recorder) -> None:
        e, _ = timbre_engine(tspace, w, slots=2)
        gate = Gate()
        gate.submit(w)
        await gate.held()
        e.note(60, 100, 0.0)
        e.note(62, 100, 0.0)
        e.note(64, 100, 0.0)  # steals slot 0 from 60, whose first frame has not been decoded
        assert w.depth == 2
        gate.open.set()
        await until(lambda: len(link.voices()) == 2 and w.link.idle)
        assert link.voices() == [(1, 1.0), (0, 1.0)] and e.held() == [0, 1]
        e.note(60, 0, 0.0)  # 60 is gone: nothing to release
        e.note(64, 0, 0.0)
        assert link.voices()[2:] == [(0, 0.0)]

    run(main)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_no_note_stays_stuck_whatever_the_decode_timing(tspace: TimbreSpace, seed: int) -> None:
    async def main(w: WorkerInference, link: Recorder) -> None:
        e, _ = timbre_engine(tspace, w, slots=3)
        rng = random.Random(seed)
        held: set[int] = set()
        gate: Gate | None = None
        for _ in range(200):
            r = rng.random()
            if r < 0.1 and gate is None:
                gate = Gate()
                gate.submit(w)
            elif r < 0.2 and gate is not None:
                gate.open.set()
                gate = None
            elif r < 0.3:
                await asyncio.sleep(0)
            elif r < 0.35:
                e.tick(0.0)
            key = rng.choice((60, 62, 64, 65, 67))
            if key in held and rng.random() < 0.6:
                e.note(key, 0, 0.0)
                held.discard(key)
            elif key not in held:
                e.note(key, 100, 0.0)
                held.add(key)
        for key in sorted(held):
            e.note(key, 0, 0.0)
        if gate is not None:
            gate.open.set()
        await until(lambda: w.depth == 0 and w.link.idle)
        await asyncio.sleep(0.05)
        await until(lambda: w.depth == 0 and w.link.idle)
        sounding: dict[int, bool] = {}
        for slot, level in link.voices():  # the audio side's view, in the order it was sent
            sounding[slot] = level > 0
        assert not any(sounding.values()), sounding
        assert e.held() == []

    run(main)


def test_engines_batch_together(space: PatchSpace, library: PresetLibrary, tspace: TimbreSpace) -> None:
    async def main(w: WorkerInference, link: Recorder) -> None:
        a, b = patch_engine(space, library, w), patch_engine(space, library, w)
        gate = Gate()
        gate.submit(w)
        await gate.held()
        a.handlers()["/latent"]((0.1, 0.9), local())
        b.handlers()["/latent"]((0.9, 0.1), local())
        gate.open.set()
        await until(lambda: a.decodes == b.decodes == 1)
        assert w.stats.last_batch == {"PatchDecode": 2}
        assert_same_patch(a.values, space.decode_unit([[0.1, 0.9]])[0])
        assert_same_patch(b.values, space.decode_unit([[0.9, 0.1]])[0])
        (ta, _), (tb, _) = timbre_engine(tspace, w), timbre_engine(tspace, w)
        ta.note(60, 100, 0.0)
        tb.note(72, 100, 0.0)
        tb.note(76, 100, 0.0)
        await until(lambda: len(link.voices()) == 3 and w.link.idle)
        gate = Gate()
        gate.submit(w)
        await gate.held()
        ta.tick(0.1)  # every layer's tick, in one loop callback: one batch
        tb.tick(0.1)
        gate.open.set()
        await until(lambda: w.stats.last_batch.get("TimbreFrames") == 2)

    run(main)


def test_render_decodes_the_newest_point_of_each_block_as_before(cfg: config.Config) -> None:
    note = {"time": 0.0, "address": "/note", "args": [60, 100]}
    flood = [{"time": 0.0, "address": "/latent", "args": [i / 50.0, 0.5]} for i in range(50)]
    last = [{"time": 0.0, "address": "/latent", "args": [49 / 50.0, 0.5]}]

    def render(events: list[dict[str, Any]]) -> npt.NDArray[np.float32]:
        return render_score(cfg, parse_score({"events": events, "duration": 0.3})).audio

    a = render([*flood, note])
    assert np.array_equal(a, render([*flood, note]))  # deterministic
    assert np.array_equal(a, render([*last, note]))  # the flood's newest point, as one move


def test_a_failed_batch_releases_what_waits_behind_it() -> None:
    class Broken:
        def run(self, inputs: Sequence[Any]) -> list[Any]:
            raise RuntimeError("model bug")

    async def main(w: WorkerInference, link: Recorder) -> None:
        delivered: list[Any] = []
        w.submit(Job(Broken(), None, delivered.append, owner="x", ordered=True))
        assert w.link.send(C.note(60, 100, 0.0))  # waits behind the broken job
        await until(lambda: len(link.log) == 1)
        assert delivered == [] and w.stats.failures == 1

    run(main)


def test_a_refused_note_on_reports_where_the_inference_is_inline(tspace: TimbreSpace) -> None:
    class Full(Recorder):
        def send(self, data: bytes) -> bool:
            return C.is_release(data)

    frames = FrameSlots(2, 1024, tspace.n_noise)
    e = TimbreEngine(tspace, Full(), frames, sample_rate=SR)
    with pytest.raises(HandlerError, match="/note: the audio command queue is full"):
        e.note(60, 100, 0.0)
    assert e.held() == [] and e.refused == 1
