"""The timbre engine: notes played through the pitch/timbre GMVAE, frame by frame, live.

Where the sound sits in timbre space is one point ``z``:

* ``/latent x y``: by default the NSynth-Super arrangement, a bilinear blend of the four
  corner instruments' mixture means (``/corners a b c d``: (0,0), (1,0), (0,1), (1,1)); after
  ``/map learned``, the code the learned 2-D map (:mod:`timbrespace.models.timbre_map`) gives
  at that point, where every instrument has its region;
* ``/source``, ``/target``, ``/alpha``: timbre transfer, ``z = mu_s + alpha (mu_t - mu_s)``
  (the seed paper's ``z_s + alpha (mu_t - mu_s)`` with the source at its own mean);
* ``/z i v``: on top of either, dimension ``i`` moved by ``v`` component standard deviations.

The last of ``/latent`` and ``/source``/``/target``/``/alpha`` decides which of the first two
places the point.  Notes: the engine chooses each note's voice slot and has the inference worker
(:mod:`timbrespace.engines.inference`) decode its first frame; when that lands, the loop writes
it to the slot and starts the voice, and a note-off sent meanwhile follows the start (the link
holds it back).  Then, every control tick (one frame of the model, ~11.6 ms), one frame for
every sounding note is decoded in one batch and written to the notes' slots; the audio side
crossfades to it.  A timbre move is thus heard within a tick and a decode.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from timbrespace.engines.base import Engine, Handler, HandlerError, RawLink, Reply
from timbrespace.engines.inference import Inference, InlineInference, Job
from timbrespace.engines.registry import BY_NAME
from timbrespace.engines.timbre_frames import FloatArray, FrameRequest, FrameResult, MapPoints, TimbreFrames, map_mean
from timbrespace.link import commands as C
from timbrespace.link.frames import FrameSlots
from timbrespace.models.timbre_space import TimbreSpace
from timbrespace.protocol.addresses import BY_PATH
from timbrespace.protocol.declaration import Value
from timbrespace.ratelog import RateLimitedLog
from timbrespace.session.context import Context
from timbrespace.state import checked_arg

log = logging.getLogger(__name__)
_log_refused = RateLimitedLog(log, 5, "refused timbre notes")


@dataclass(eq=False)  # compared by identity: a slot's note is this one, not one like it
class _Note:
    key: int  # the key struck: its note-off releases the note wherever /pitch glided it
    pitch: float
    velocity: int
    t_on: float
    t_off: float | None = None
    started: bool = False  # its first frame landed and its voice was started
    refused: bool = False  # the synth's queue was full when it was to start
    #: A finger's note (``/touch``): its token and its own map point; None: a key's, at the layer's point.
    touch: int | None = None
    xy: tuple[float, float] | None = None
    #: The learned map's code at ``xy`` and the point it was decoded at (decoded once per move).
    code: FloatArray | None = None
    code_at: MapPoints | None = None


class TimbreEngine(Engine):
    """Serves /latent, /map, /source, /target, /alpha, /corners, /z and plays notes through the model."""

    name = "timbre"
    item = BY_NAME[name].item
    touch_points = True

    def __init__(
        self,
        space: TimbreSpace,
        link: RawLink,
        frames: FrameSlots,
        *,
        sample_rate: float,
        corners: tuple[str, str, str, str] = ("flute", "trumpet", "cello", "piano"),
        map_kind: str = "corners",
        release_s: float = 0.3,
        clock: Callable[[], float] = time.monotonic,
        inference: Inference | None = None,
        layer: int = 0,
    ) -> None:
        super().__init__()
        self.space = space
        #: Runs the model; None: inline, at once (tests, tools).
        self.inference = inference if inference is not None else InlineInference(link)
        #: The layer this engine plays (its commands and patches go to that layer's voices).
        self.layer = layer
        self.link = self.inference.link.layer(layer)
        self.frames = frames
        self.sample_rate = float(sample_rate)
        self.release_s = float(release_s)
        self.clock = clock
        self.tick_period = space.hop_s
        self.corners = tuple(space.instrument(c) for c in corners)
        self.xy = (0.5, 0.5)
        self.source = self.target = 0
        self.alpha = 0.0
        self.mode = "map"  # which of /latent or /source-/target-/alpha placed the point last
        self.map_kind = "corners"
        # The learned map's code and the xy it was decoded at: decoded when a frame needs it and xy
        # moved, so a flood of /latent costs one decode per control tick, not one per message (~0.1 ms).
        self._learned = np.zeros(space.latent_dim)
        self._learned_key: MapPoints | None = None
        #: The points blended under sessions.collision blend (empty: the one point ``xy``).
        self._points: MapPoints = ()
        if map_kind == "learned" and space.learned_map is None:
            log.warning("timbre: %s; /latent uses the corners", space.map_error)
        else:
            self.map_kind = map_kind
        self.offset = np.zeros(space.latent_dim)
        self._notes: dict[int, _Note] = {}  # slot -> note
        self._latest: int | None = None  # slot of the most recent note (/pitch)
        # The model's noise gains are magnitudes on unit white noise at its own sample rate;
        # the bank's unit is unit white noise at ours: same power density, scaled by the rates.
        self._noise_scale = math.sqrt(self.sample_rate / space.sample_rate)
        self._kind = TimbreFrames(space, self.sample_rate, frames.table_size)
        self.refused = 0  # note-ons the synth's full queue refused when they were to start

    # -- engine interface ------------------------------------------------------------------------
    def handlers(self) -> dict[str, Handler]:
        """Address -> handler."""
        return {
            "/latent": self._latent,
            "/source": self._source,
            "/target": self._target,
            "/alpha": self._alpha,
            "/corners": self._corners,
            "/map": self._map,
            "/z": self._z,
        }

    def snapshot(self) -> dict[str, Any]:
        """Plain-data state (instruments by name, so a retrained model keeps it)."""
        names = self.space.instruments
        return {
            "engine": self.name,
            "mode": self.mode,
            "map": self.map_kind,
            "xy": [float(v) for v in self.xy],
            "corners": [names[i] for i in self.corners],
            "source": names[self.source],
            "target": names[self.target],
            "alpha": self.alpha,
            "offset": [float(v) for v in self.offset],
        }

    def state_messages(self) -> list[Reply]:
        """/map, /corners, /latent, /source, /target, /alpha and every /z dimension."""
        names = self.space.instruments
        return [
            ("/map", (self.map_kind,)),
            ("/corners", tuple(names[i] for i in self.corners)),
            ("/latent", self.xy),
            ("/source", (names[self.source],)),
            ("/target", (names[self.target],)),
            ("/alpha", (self.alpha,)),
            *(("/z", (i, v)) for i, v in enumerate(self.offset.tolist())),
        ]

    def restore(self, state: Mapping[str, Any]) -> None:
        """Take back a snapshot; what no longer resolves is skipped with a log line."""
        try:
            xy = state.get("xy", self.xy)
            if isinstance(xy, list | tuple) and len(xy) == 2:
                lat = BY_PATH["/latent"].args
                self.xy = (checked_arg("timbre.xy[0]", xy[0], lat[0], self.xy[0]),
                           checked_arg("timbre.xy[1]", xy[1], lat[1], self.xy[1]))
            corners = state.get("corners")
            if isinstance(corners, list) and len(corners) == 4:
                self.corners = tuple(self.space.instrument(c) for c in corners)
            self.source = self.space.instrument(state.get("source", self.source))
            self.target = self.space.instrument(state.get("target", self.target))
            self.alpha = checked_arg("timbre.alpha", state.get("alpha", self.alpha), BY_PATH["/alpha"].args[0],
                                     self.alpha)
            offset = state.get("offset")
            if isinstance(offset, list) and len(offset) == len(self.offset):
                z = BY_PATH["/z"].args[1]
                self.offset = np.array([checked_arg(f"timbre.offset[{i}]", v, z, 0.0) for i, v in enumerate(offset)])
            if state.get("mode") in ("map", "transfer"):
                self.mode = str(state["mode"])
            kind = state.get("map", self.map_kind)
            if kind == "learned" and self.space.learned_map is None:
                log.warning("state: the saved map is the learned one, but %s; using the corners", self.space.map_error)
                kind = "corners"
            if kind in ("corners", "learned"):
                self.map_kind = str(kind)
        except (TypeError, ValueError) as e:
            log.warning("state: ignoring unreadable timbre state (%s)", e)

    def activate(self, arrival: float) -> None:
        """Nothing to send: notes carry their frames, and the app switches the synths."""

    def flush(self) -> None:
        """Decode pending frames now where the inference runs inline (the offline renderer)."""
        self.inference.flush()

    # -- the point in timbre space ------------------------------------------------------------------
    def point(self) -> FloatArray:
        """The timbre code notes are decoded with now (the learned map decoded here if it moved)."""
        base = self._base()
        if isinstance(base, tuple):
            self._learned, self._learned_key = map_mean(self.space, base), base
            base = self._learned
        return np.asarray(base + self.offset * self.space.sigma)

    def _base(self) -> FloatArray | MapPoints:
        """The code before ``/z`` offsets, or the learned map's (x, y) when it has not been decoded there."""
        m = self.space.means
        points = self._points or (self.xy,)
        if self.mode == "map" and self.map_kind == "learned":
            if self._learned_key != points:
                return points
            base = self._learned
        elif self.mode == "map":
            a, b, c, d = (m[i] for i in self.corners)
            base = np.mean([(1 - x) * (1 - y) * a + x * (1 - y) * b + (1 - x) * y * c + x * y * d
                            for x, y in points], axis=0)
        else:
            base = m[self.source] + self.alpha * (m[self.target] - m[self.source])
        return np.asarray(base)

    def _instrument(self, ref: Value, what: str) -> int:
        try:
            return self.space.instrument(ref if isinstance(ref, str) else int(ref))
        except ValueError as e:
            raise HandlerError(f"{what}: {e}") from None

    def knows(self, name: str) -> bool:
        try:
            self.space.instrument(name)
        except ValueError:
            return False
        return True

    def _latent(self, args: tuple[Value, ...], ctx: Context) -> list[Reply]:
        self.xy = (float(args[0]), float(args[1]))
        self._points = ()
        self.mode = "map"
        return []

    def blend(self, points: Sequence[tuple[float, float]], ctx: Context) -> list[Reply]:
        """Sound the mean of the codes at these map points (the map is not affine: each is mapped first)."""
        self.xy = (sum(p[0] for p in points) / len(points), sum(p[1] for p in points) / len(points))
        self._points = tuple(points) if len(points) > 1 else ()
        self.mode = "map"
        return []

    def _map(self, args: tuple[Value, ...], ctx: Context) -> list[Reply]:
        kind = str(args[0])
        if kind == "learned" and self.space.learned_map is None:
            raise HandlerError(f"/map learned: {self.space.map_error}")
        self.map_kind = kind
        self.mode = "map"
        return []

    def _source(self, args: tuple[Value, ...], ctx: Context) -> list[Reply]:
        self.source = self._instrument(args[0], "/source")
        self.mode = "transfer"
        return []

    def _target(self, args: tuple[Value, ...], ctx: Context) -> list[Reply]:
        self.target = self._instrument(args[0], "/target")
        self.mode = "transfer"
        return []

    def _alpha(self, args: tuple[Value, ...], ctx: Context) -> list[Reply]:
        self.alpha = float(args[0])
        self.mode = "transfer"
        return []

    def _corners(self, args: tuple[Value, ...], ctx: Context) -> list[Reply]:
        self.corners = tuple(self._instrument(a, "/corners") for a in args)
        return []

    def _z(self, args: tuple[Value, ...], ctx: Context) -> list[Reply]:
        index = int(args[0])
        if index >= self.space.latent_dim:
            raise HandlerError(f"/z argument 'index': {index} is out of range 0..{self.space.latent_dim - 1} "
                               "(the timbre code's dimensions)")
        self.offset[index] = float(args[1])
        return []

    # -- notes ------------------------------------------------------------------------------------
    def note(self, pitch: int, velocity: int, arrival: float) -> None:
        """Start a note on a free (or the oldest) slot once its first frame is decoded, or release it."""
        now = self.clock()
        if velocity <= 0:
            for slot, n in self._notes.items():
                if n.t_off is None and n.key == pitch and n.touch is None:
                    n.t_off = now
                    self._send(C.voice(slot, 0.0, arrival), "/note")  # after its start, if that waits
            return
        self._begin(_Note(int(pitch), float(pitch), int(velocity), now), arrival)

    def touch(self, token: int, pitch: int, velocity: int, xy: tuple[float, float], arrival: float) -> None:
        """A finger's note, at its own map point (decoded with every other note at each tick)."""
        self._begin(_Note(-1, float(pitch), int(velocity), self.clock(), touch=token, xy=xy), arrival)

    def touch_move(self, token: int, xy: tuple[float, float], arrival: float) -> None:
        """The finger moved: its note sounds its new point from the next tick on."""
        for n in self._notes.values():
            if n.touch == token and n.t_off is None:
                n.xy = xy

    def touch_off(self, token: int, arrival: float) -> None:
        """The finger lifted: its note is released (wherever it was stolen to, nothing)."""
        for slot, n in self._notes.items():
            if n.touch == token and n.t_off is None:
                n.t_off = self.clock()
                self._send(C.voice(slot, 0.0, arrival), "/touch/off")

    def _begin(self, note: _Note, arrival: float) -> None:
        now = note.t_on
        slot = self._free_slot(now)
        old = self._notes.get(slot)
        if old is not None and not old.started:
            self.inference.cancel(old)  # stolen before it sounded: it never will
        self._notes[slot] = note
        self._latest = slot
        request = self._request([(slot, note)], now)
        self.inference.submit(Job(self._kind, request, partial(self._start, slot, note, request, arrival),
                                  owner=note, ordered=True))
        if note.refused:  # known at once where the inference runs inline
            what = "/note" if note.touch is None else "/touch"
            raise HandlerError(f"{what}: the audio command queue is full; message dropped")

    def held(self) -> list[int]:
        """The voice slots of the notes held (not released)."""
        return sorted(s for s, n in self._notes.items() if n.t_off is None)

    def pitch(self, midi: float, arrival: float) -> None:
        """Glide the most recent note (a frame at the new pitch is decoded at once)."""
        n = self._notes.get(self._latest) if self._latest is not None else None
        if n is not None:
            n.pitch = float(midi)
            if n.started:
                assert self._latest is not None
                self._frames([(self._latest, n)], self.clock(), arrival, (self, "pitch"))

    def panic(self, arrival: float) -> None:
        """Release every note of this engine."""
        now = self.clock()
        for slot, n in self._notes.items():
            if n.t_off is None:
                n.t_off = now
                self._send(C.voice(slot, 0.0, arrival), "/panic")

    def cut(self, pitches: Iterable[int], arrival: float) -> None:
        """Release these notes: a timbre voice's release is its own short one, as on :meth:`panic`."""
        for p in sorted(set(pitches)):
            self.note(p, 0, arrival)

    def tick(self, now: float) -> None:
        """Have one frame decoded for every sounding note (one job per engine, replacing a waiting one)."""
        done = [s for s, n in self._notes.items() if n.t_off is not None and now - n.t_off > self.release_s]
        for s in done:
            n = self._notes.pop(s)
            if not n.started:
                self.inference.cancel(n)
        rows = [(s, n) for s, n in self._notes.items() if n.started]
        if rows:
            self._frames(rows, now, 0.0, (self, "tick"))

    def _free_slot(self, now: float) -> int:
        free = [s for s in range(self.frames.slots) if s not in self._notes]
        if free:
            return free[0]
        # All busy: the note released longest ago, else the oldest held one (voice stealing).
        released = [(n.t_off, s) for s, n in self._notes.items() if n.t_off is not None]
        if released:
            return min(released)[1]
        return min((n.t_on, s) for s, n in self._notes.items())[1]

    def _request(self, rows: Sequence[tuple[int, _Note]], now: float) -> FrameRequest:
        """What the worker needs to decode one frame for each of ``rows`` at time ``now``."""
        hop = self.space.hop_s
        fades = [1.0 if n.t_off is None else max(0.0, 1.0 - (now - n.t_off) / self.release_s) for _, n in rows]
        own = tuple(None if n.xy is None else self._touch_base(n) for _, n in rows)
        # The noise bank is shared: a releasing note's noise follows its voice's release here.
        return FrameRequest(
            self._base(), self.offset * self.space.sigma,
            np.array([n.pitch for _, n in rows]),
            np.array([max(0, int((now - n.t_on) / hop)) for _, n in rows], dtype=np.int64),
            np.array([n.velocity for _, n in rows], dtype=np.float64),
            np.array(fades) * self._noise_scale,
            own if any(o is not None for o in own) else (),
        )

    def _touch_base(self, n: _Note) -> FloatArray | MapPoints:
        """A finger's code before ``/z``: the layer's map (corners or learned) at its own point.

        A finger is a place on the map, so it sounds the map there even while the layer's own
        point is placed by /source, /target and /alpha.
        """
        assert n.xy is not None
        x, y = n.xy
        if self.map_kind == "learned":
            at = ((x, y),)
            return n.code if n.code_at == at and n.code is not None else at
        a, b, c, d = (self.space.means[i] for i in self.corners)
        return np.asarray((1 - x) * (1 - y) * a + x * (1 - y) * b + (1 - x) * y * c + x * y * d)

    def _frames(self, rows: list[tuple[int, _Note]], now: float, arrival: float, owner: tuple[object, str]) -> None:
        request = self._request(rows, now)
        self.inference.submit(Job(self._kind, request, partial(self._landed, rows, request, arrival),
                                  owner=owner))

    def _remember(self, request: FrameRequest, result: FrameResult, notes: Sequence[_Note]) -> None:
        """Keep the learned-map points the worker decoded (the layer's, each finger's), so later
        frames need not decode them again."""
        if isinstance(request.base, tuple):
            self._learned, self._learned_key = result.base, request.base
        for n, asked, code in zip(notes, request.own, result.own):
            if isinstance(asked, tuple) and n.xy is not None and asked == (n.xy,):
                n.code, n.code_at = code, asked

    def _landed(self, rows: list[tuple[int, _Note]], request: FrameRequest, arrival: float,
                result: FrameResult) -> None:
        """Frames decoded: each to its note's slot, unless the slot went to another note meanwhile."""
        self._remember(request, result, [n for _, n in rows])
        for i, (slot, n) in enumerate(rows):
            if self._notes.get(slot) is n:
                self.frames.put(slot, result.tables[i], result.noise[i], float(result.f0[i]), arrival)

    def _start(self, slot: int, n: _Note, request: FrameRequest, arrival: float,
               result: FrameResult) -> None:
        """A note's first frame landed: write it and start the voice (in the link's order)."""
        self._remember(request, result, [n])
        if self._notes.get(slot) is not n:
            return  # stolen (or aged out) before it started
        self.frames.put(slot, result.tables[0], result.noise[0], float(result.f0[0]), arrival)
        if self.link.send(C.voice(slot, 1.0, arrival)):
            n.started = True
            return
        del self._notes[slot]  # refused: the note is not ours to track
        n.refused = True
        self.refused += 1
        _log_refused.warning("a timbre note-on was refused: the audio command queue is full")
