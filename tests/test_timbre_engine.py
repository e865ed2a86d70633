"""The timbre engine's control side: the timbre point, instruments, notes, ticks and frame slots.

A small untrained GMVAE (real weights, random) stands in for the shipped checkpoint here: these
tests are about what the engine does with any model.  What the shipped model sounds like is
measured in test_timbre_sound.py.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest
import torch

from timbrespace.engines.base import HandlerError
from timbrespace.engines.timbre import TimbreEngine
from timbrespace.link import commands as C
from timbrespace.link.frames import FrameSlots
from timbrespace.link.wavetable import harmonic_table
from timbrespace.models.timbre_gmvae import TimbreGMVAE
from timbrespace.models.timbre_map import fit_map
from timbrespace.models.timbre_space import TimbreSpace, normalise_name
from timbrespace.protocol import addresses, declaration
from timbrespace.session.context import local

from conftest import assert_inaudibly_close

pytestmark = pytest.mark.numeric

NAMES = ["piano", "violin", "cello", "english_horn", "french_horn", "trombone", "trumpet", "saxophone",
         "bassoon", "clarinet", "flute", "oboe"]
SR = 48000.0


class Link:
    """The engine's way to the synth, kept for inspection (commands in order)."""

    def __init__(self) -> None:
        self.sent: deque[bytes] = deque()

    def send(self, data: bytes) -> bool:
        self.sent.append(data)
        return True

    def put_patch(self, values: object, arrival: float) -> None:
        raise AssertionError("the timbre engine never sends patches")

    def commands(self) -> list[C.Command]:
        out = [C.decode(d) for d in self.sent]
        self.sent.clear()
        return out


@pytest.fixture(scope="module")
def space() -> TimbreSpace:
    torch.manual_seed(0)
    model = TimbreGMVAE(list(range(36, 97)), len(NAMES), -12.0, 2.0, channels=8, hidden=16, dec_hidden=32)
    return TimbreSpace(model, NAMES, torch.device("cpu"))


@pytest.fixture(scope="module")
def mapped(space: TimbreSpace) -> TimbreSpace:
    """The same model with a learned map fitted to codes around its instrument means."""
    g = torch.Generator().manual_seed(0)
    means = torch.as_tensor(space.means, dtype=torch.float32)
    mu = means.repeat_interleave(20, 0) + 0.3 * torch.randn(20 * len(NAMES), space.latent_dim, generator=g)
    tmap = fit_map(mu, torch.full_like(mu, -3.0), space.sigma, steps=300, seed=0).model
    return TimbreSpace(space.model, NAMES, torch.device("cpu"), learned_map=tmap)


def make(space: TimbreSpace, slots: int = 4) -> tuple[TimbreEngine, Link, FrameSlots, list[float]]:
    clock = [0.0]
    link = Link()
    frames = FrameSlots(slots, 1024, space.n_noise)
    engine = TimbreEngine(space, link, frames, sample_rate=SR, release_s=0.2, clock=lambda: clock[0])
    return engine, link, frames, clock


def call(engine: TimbreEngine, path: str, *raw: object) -> None:
    engine.handlers()[path](addresses.lookup(path).parse(raw), local())


def test_instruments_are_found_by_index_or_loosely_written_name(space: TimbreSpace) -> None:
    assert space.instrument("French horn") == space.instrument("french-horn") == space.instrument("FRENCH_HORN") == 4
    assert space.instrument(10) == 10 and normalise_name(" English  Horn ") == "englishhorn"
    with pytest.raises(ValueError, match="unknown instrument 'tuba'; expected an index or one of: piano, violin"):
        space.instrument("tuba")
    with pytest.raises(ValueError, match=r"out of range 0\.\.11"):
        space.instrument(12)


def test_the_map_blends_the_four_corners_bilinearly(space: TimbreSpace) -> None:
    e, *_ = make(space)
    call(e, "/corners", "flute", 6, "Cello", "piano")
    m = space.means
    for (x, y), k in (((0, 0), 10), ((1, 0), 6), ((0, 1), 2), ((1, 1), 0)):
        call(e, "/latent", float(x), float(y))
        assert np.allclose(e.point(), m[k])
    call(e, "/latent", 0.25, 0.5)
    want = 0.375 * m[10] + 0.125 * m[6] + 0.375 * m[2] + 0.125 * m[0]
    assert np.allclose(e.point(), want)


def test_blend_sounds_the_mean_of_the_codes_not_the_code_of_the_mean(space: TimbreSpace,
                                                                     mapped: TimbreSpace) -> None:
    # sessions.collision blend: each point is mapped to its code, then the codes are averaged.
    points = [(0.1, 0.9), (0.8, 0.2), (0.5, 0.6)]
    for sp, kind in ((space, "corners"), (mapped, "learned")):
        e, *_ = make(sp)
        call(e, "/map", kind)
        codes = []
        for x, y in points:
            call(e, "/latent", x, y)
            codes.append(e.point())
        e.blend(points, local())
        blended = e.point()
        assert np.allclose(blended, np.mean(codes, axis=0), atol=1e-6), kind
        assert e.xy == pytest.approx(tuple(np.mean(points, axis=0)))  # shown: the mean point
    # On the corners' bilinear map the mean point sounds something else: the codes differ by the
    # xy term, (mean(xy) - mean(x) mean(y)) (a - b - c + d).
    e, *_ = make(space)
    e.blend(points, local())
    blended = e.point()
    call(e, "/latent", *e.xy)
    a, b, c, d = (space.means[i] for i in e.corners)
    xs, ys = np.array(points).T
    assert np.allclose(blended - e.point(), (np.mean(xs * ys) - xs.mean() * ys.mean()) * (a - b - c + d), atol=1e-6)


def test_transfer_moves_from_source_to_target_with_alpha_and_z_offsets_add(space: TimbreSpace) -> None:
    e, *_ = make(space)
    call(e, "/source", "bassoon")
    call(e, "/target", "french horn")
    call(e, "/alpha", 0.25)
    m = space.means
    assert np.allclose(e.point(), m[8] + 0.25 * (m[4] - m[8]))
    call(e, "/z", 3, -1.5)
    shifted = e.point()
    assert shifted[3] == pytest.approx(m[8][3] + 0.25 * (m[4][3] - m[8][3]) - 1.5 * space.sigma)
    with pytest.raises(HandlerError, match=r"out of range 0\.\.15"):
        call(e, "/z", 16, 1.0)
    with pytest.raises(HandlerError, match="/source: unknown instrument 'kazoo'"):
        call(e, "/source", "kazoo")


def test_a_note_publishes_its_first_frame_before_it_starts(space: TimbreSpace) -> None:
    e, link, frames, _ = make(space)
    call(e, "/latent", 0.3, 0.7)
    e.note(69, 100, 1.5)
    [cmd] = link.commands()
    assert cmd.kind is C.Kind.VOICE and cmd.args == (0, 1.0) and cmd.arrival == 1.5
    table = np.zeros(1024, np.float32)
    noise = np.zeros(space.n_noise, np.float32)
    got = frames.take(0, table, noise)
    assert got is not None and got[0] == pytest.approx(440.0)
    amps, want_noise = space.frames(e.point()[None], [69.0], [0], [100.0])
    assert_inaudibly_close(table, harmonic_table(amps[0], 440.0, SR, 1024))
    assert_inaudibly_close(noise, want_noise[0] * np.sqrt(SR / space.sample_rate))


def test_ticks_advance_frames_and_follow_timbre_moves(space: TimbreSpace) -> None:
    e, _, frames, clock = make(space)
    e.note(60, 90, 0.0)
    table = np.zeros(1024, np.float32)
    noise = np.zeros(space.n_noise, np.float32)
    frames.take(0, table, noise)
    first = table.copy()
    clock[0] = 10 * space.hop_s
    e.tick(clock[0])
    assert frames.take(0, table, noise) is not None
    amps, _ = space.frames(e.point()[None], [60.0], [10], [90.0])
    assert_inaudibly_close(table, harmonic_table(amps[0], 261.6256, SR, 1024))
    call(e, "/latent", 1.0, 1.0)  # heard at the next tick
    e.tick(clock[0])
    frames.take(0, table, noise)
    amps, _ = space.frames(space.means[0][None], [60.0], [10], [90.0])
    assert_inaudibly_close(table, harmonic_table(amps[0], 261.6256, SR, 1024))
    assert np.abs(table - first).max() > 0.01 * np.abs(first).max()  # and that is another sound


def test_release_frees_the_slot_after_the_release_time(space: TimbreSpace) -> None:
    e, link, frames, clock = make(space, slots=2)
    e.note(60, 100, 0.0)
    e.note(64, 100, 0.0)
    link.commands()
    e.note(60, 0, 0.0)
    [off] = link.commands()
    assert off.kind is C.Kind.VOICE and off.args == (0, 0.0)
    clock[0] = 0.1
    e.tick(0.1)  # still releasing: its noise fades with the voice
    table = np.zeros(1024, np.float32)
    noise = np.zeros(space.n_noise, np.float32)
    frames.take(0, table, noise)
    _, raw = space.frames(e.point()[None], [60.0], [int(0.1 / space.hop_s)], [100.0])
    assert_inaudibly_close(noise, raw[0] * np.sqrt(SR / space.sample_rate) * 0.5)
    clock[0] = 0.35
    e.tick(0.35)
    e.note(67, 100, 0.35)  # slot 0 is free again
    assert link.commands()[-1].args == (0, 1.0)


def test_a_full_engine_steals_the_oldest_note(space: TimbreSpace) -> None:
    e, link, _, clock = make(space, slots=2)
    for k, p in enumerate((60, 62, 64)):
        clock[0] = 0.01 * k
        e.note(p, 100, 0.0)
    starts = [c.args[0] for c in link.commands()]
    assert starts == [0, 1, 0]


def test_panic_releases_every_note_of_the_engine(space: TimbreSpace) -> None:
    e, link, *_ = make(space)
    e.note(60, 100, 0.0)
    e.note(72, 100, 0.0)
    link.commands()
    e.panic(0.0)
    assert sorted(c.args for c in link.commands()) == [(0, 0.0), (1, 0.0)]


def test_snapshot_round_trips_by_instrument_name(space: TimbreSpace) -> None:
    e, *_ = make(space)
    call(e, "/corners", "oboe", "piano", "violin", "cello")
    call(e, "/source", "trumpet")
    call(e, "/alpha", 0.75)
    call(e, "/z", 2, 1.0)
    snap = e.snapshot()
    assert snap["corners"] == ["oboe", "piano", "violin", "cello"] and snap["source"] == "trumpet"
    f, *_ = make(space)
    f.restore(snap)
    assert np.allclose(f.point(), e.point()) and f.snapshot() == snap
    f.restore({"corners": ["nope"] * 4, "alpha": "x"})  # unreadable: logged and left as it was
    assert f.snapshot() == snap


def test_the_learned_map_places_the_point_once_chosen(mapped: TimbreSpace, space: TimbreSpace) -> None:
    e, *_ = make(mapped)
    call(e, "/latent", 0.2, 0.7)
    corners = e.point()
    call(e, "/map", "learned")
    assert np.allclose(e.point(), mapped.map_point(0.2, 0.7)) and not np.allclose(e.point(), corners)
    call(e, "/latent", 0.9, 0.1)  # /latent now moves over the learned map
    assert np.allclose(e.point(), mapped.map_point(0.9, 0.1))
    # a flood of /latent decodes the map once, when a frame needs the point
    decodes = []
    real = mapped.map_point
    mapped.map_point = lambda x, y: decodes.append((x, y)) or real(x, y)  # type: ignore[method-assign]
    try:
        for i in range(500):
            call(e, "/latent", i / 1000, 0.5)
        call(e, "/latent", 0.7, 0.2)
        assert decodes == [] and np.allclose(e.point(), real(0.7, 0.2)) and np.allclose(e.point(), e.point())
        assert decodes == [(0.7, 0.2)]
    finally:
        del mapped.map_point
    call(e, "/latent", 0.9, 0.1)
    call(e, "/z", 1, 2.0)  # offsets add on top of it as on the corners
    assert e.point()[1] == pytest.approx(mapped.map_point(0.9, 0.1)[1] + 2.0 * mapped.sigma)
    call(e, "/alpha", 0.5)  # transfer takes over until the next /latent or /map
    assert e.snapshot()["mode"] == "transfer"
    call(e, "/map", "learned")
    assert e.snapshot()["mode"] == "map" and e.snapshot()["map"] == "learned"
    f, *_ = make(mapped)
    f.restore(e.snapshot())
    assert np.allclose(f.point(), e.point())
    call(e, "/map", "corners")
    h, *_ = make(mapped)
    call(h, "/latent", 0.9, 0.1)
    call(h, "/z", 1, 2.0)
    assert np.allclose(e.point(), h.point())  # back on the corners' blend at the same xy
    # a model without a learned map: /map learned fails with the reason, a saved choice falls back
    g, *_ = make(space)
    with pytest.raises(HandlerError, match="/map learned: no learned map was given"):
        call(g, "/map", "learned")
    g.restore(e.snapshot() | {"map": "learned"})
    assert g.snapshot()["map"] == "corners"
    with pytest.raises(declaration.InvalidMessage, match="/map argument 'kind': unknown map 'grid'; expected one of: "
                       "corners, learned"):
        addresses.lookup("/map").parse(("grid",))


def test_frame_slots_skip_a_frame_being_written() -> None:
    slots = FrameSlots(2, 8, 3)
    table = np.zeros(8, np.float32)
    noise = np.zeros(3, np.float32)
    assert slots.take(1, table, noise) is None and slots.changed() == []
    slots.put(1, np.arange(8), [1, 2, 3], 220.0, 0.5)
    assert slots.changed() == [1]
    assert slots.take(1, table, noise) == (220.0, 0.5) and table[7] == 7 and noise[2] == 3
    assert slots.take(1, table, noise) is None  # taken already
    slots._head[1, 0] += 1.0  # a writer in the middle of its copy
    assert slots.changed() == [] and slots.take(1, table, noise) is None
    slots.put(0, np.zeros(8), [0, 0, 0], 110.0)  # a new frame elsewhere is still seen
    assert slots.changed() == [0] and slots.take(0, table, noise) == (110.0, 0.0)
    assert slots.changed() == []


def _frame(frames: FrameSlots, slot: int, space: TimbreSpace) -> np.ndarray:
    table = np.zeros(1024, np.float32)
    assert frames.take(slot, table, np.zeros(space.n_noise, np.float32)) is not None
    return table


def _code(e: TimbreEngine, x: float, y: float) -> np.ndarray:
    """The code a key note has with the layer's point at (x, y); the point put back at the centre."""
    call(e, "/latent", x, y)
    z = e.point()
    call(e, "/latent", 0.5, 0.5)
    return z


def _heard(space: TimbreSpace, z: np.ndarray, frame: int) -> np.ndarray:
    """Middle C's table at code ``z`` and frame ``frame``, velocity 100."""
    amps, _ = space.frames(z[None], [60.0], [frame], [100.0])
    return harmonic_table(amps[0], 261.6256, SR, 1024)


def test_each_finger_sounds_its_own_point_and_lifts_alone(space: TimbreSpace, mapped: TimbreSpace) -> None:
    """/touch: a finger's note is decoded at its own map point (the layer's /z offsets on top), a
    key's at the layer's point, all in one tick's batch; a finger lifted releases its slot only."""
    for sp, kind in ((space, "corners"), (mapped, "learned")):
        e, link, frames, clock = make(sp)
        call(e, "/map", kind)
        call(e, "/z", 2, 1.0)
        call(e, "/latent", 0.5, 0.5)
        e.touch(1, 60, 100, (0.0, 0.0), 0.0)  # slot 0
        e.touch(2, 60, 100, (1.0, 1.0), 0.0)  # slot 1: the same key, another place
        e.note(60, 100, 0.0)  # slot 2: a key, at the layer's point
        assert [c.args for c in link.commands()] == [(0, 1.0), (1, 1.0), (2, 1.0)]

        clock[0] = 4 * sp.hop_s
        e.tick(clock[0])
        tables = [_frame(frames, s, sp) for s in range(3)]
        wanted = [_heard(sp, z, 4) for z in (_code(e, 0.0, 0.0), _code(e, 1.0, 1.0), e.point())]
        # Each slot holds its own point's frame: far closer to it than the points' frames are to each
        # other (this small untrained model sounds its codes alike, so closeness alone would not tell).
        apart = min(np.abs(a - b).max() for i, a in enumerate(wanted) for b in wanted[i + 1:])
        for table, want in zip(tables, wanted):
            assert_inaudibly_close(table, want)
            assert np.abs(table - want).max() < 0.1 * apart, kind
        e.touch_move(2, (0.0, 0.0), 0.0)  # the second finger joins the first: the same sound next tick
        e.tick(clock[0])
        assert_inaudibly_close(_frame(frames, 1, sp), tables[0])
        e.note(60, 0, 0.0)  # the key's note-off leaves the fingers on that key sounding
        e.touch_off(1, 0.0)
        assert [c.args for c in link.commands()] == [(2, 0.0), (0, 0.0)]
        assert e.held() == [1]
