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
places the point.  Notes: the engine chooses each note's voice slot, decodes its first frame
at once (heard at the next block) and then, every control tick (one frame of the model,
~11.6 ms), decodes one frame for every sounding note in one batch and publishes it to the
note's slot; the audio side crossfades to it.  A timbre move is thus heard within one tick.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from timbrespace.engines.base import Engine, Handler, HandlerError, Reply, SynthLink
from timbrespace.engines.registry import BY_NAME
from timbrespace.link import commands as C
from timbrespace.link.frames import FrameSlots
from timbrespace.link.wavetable import harmonic_tables
from timbrespace.models.timbre_space import TimbreSpace
from timbrespace.protocol.addresses import BY_PATH, Value
from timbrespace.session.context import Context
from timbrespace.state import checked_arg

log = logging.getLogger(__name__)
FloatArray = npt.NDArray[np.float64]


@dataclass
class _Note:
    key: int  # the key struck: its note-off releases the note wherever /pitch glided it
    pitch: float
    velocity: int
    t_on: float
    t_off: float | None = None


class TimbreEngine(Engine):
    """Serves /latent, /map, /source, /target, /alpha, /corners, /z and plays notes through the model."""

    name = "timbre"
    item = BY_NAME[name].item

    def __init__(
        self,
        space: TimbreSpace,
        link: SynthLink,
        frames: FrameSlots,
        *,
        sample_rate: float,
        corners: tuple[str, str, str, str] = ("flute", "trumpet", "cello", "piano"),
        map_kind: str = "corners",
        release_s: float = 0.3,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.space = space
        self.link = link
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
        self._learned_xy: tuple[float, float] | None = None
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
            *(("/z", (i, float(v))) for i, v in enumerate(self.offset)),
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

    # -- the point in timbre space ------------------------------------------------------------------
    def point(self) -> FloatArray:
        """The timbre code notes are decoded with now."""
        m = self.space.means
        if self.mode == "map" and self.map_kind == "learned":
            if self._learned_xy != self.xy:
                self._learned = self.space.map_point(*self.xy)
                self._learned_xy = self.xy
            base = self._learned
        elif self.mode == "map":
            x, y = self.xy
            a, b, c, d = (m[i] for i in self.corners)
            base = (1 - x) * (1 - y) * a + x * (1 - y) * b + (1 - x) * y * c + x * y * d
        else:
            base = m[self.source] + self.alpha * (m[self.target] - m[self.source])
        return np.asarray(base + self.offset * self.space.sigma)

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
        """Start a note on a free (or the oldest) slot with its first frame, or release it."""
        now = self.clock()
        if velocity <= 0:
            for slot, n in self._notes.items():
                if n.t_off is None and n.key == pitch:
                    n.t_off = now
                    self._send(C.voice(slot, 0.0, arrival), "/note")
            return
        slot = self._free_slot(now)
        note = _Note(int(pitch), float(pitch), int(velocity), now)
        self._publish({slot: note}, now, arrival)
        self._send(C.voice(slot, 1.0, arrival), "/note")  # refused: the note is not ours to track
        self._notes[slot] = note
        self._latest = slot

    def held(self) -> list[int]:
        """The voice slots of the notes held (not released)."""
        return sorted(s for s, n in self._notes.items() if n.t_off is None)

    def pitch(self, midi: float, arrival: float) -> None:
        """Glide the most recent note (its next frame carries the new pitch)."""
        n = self._notes.get(self._latest) if self._latest is not None else None
        if n is not None:
            n.pitch = float(midi)
            self._publish({self._latest: n}, self.clock(), arrival)  # type: ignore[dict-item]

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
        """Decode and publish one frame for every sounding note."""
        done = [s for s, n in self._notes.items() if n.t_off is not None and now - n.t_off > self.release_s]
        for s in done:
            del self._notes[s]
        if self._notes:
            self._publish(self._notes, now, 0.0)

    def _free_slot(self, now: float) -> int:
        free = [s for s in range(self.frames.slots) if s not in self._notes]
        if free:
            return free[0]
        # All busy: the note released longest ago, else the oldest held one (voice stealing).
        released = [(n.t_off, s) for s, n in self._notes.items() if n.t_off is not None]
        if released:
            return min(released)[1]
        return min((n.t_on, s) for s, n in self._notes.items())[1]

    def _publish(self, notes: Mapping[int, _Note], now: float, arrival: float) -> None:
        slots = list(notes)
        ns = [notes[s] for s in slots]
        hop = self.space.hop_s
        frame = np.array([max(0, int((now - n.t_on) / hop)) for n in ns])
        pitch = np.array([n.pitch for n in ns])
        z = np.repeat(self.point()[None, :], len(ns), axis=0)
        amps, noise = self.space.frames(z, pitch, frame, np.array([n.velocity for n in ns], dtype=np.float64))
        f0 = 440.0 * 2.0 ** ((pitch - 69.0) / 12.0)
        tables = harmonic_tables(amps, f0, self.sample_rate, self.frames.table_size)
        for i, (slot, n) in enumerate(zip(slots, ns, strict=True)):
            fade = 1.0
            if n.t_off is not None:  # the noise bank is shared: follow the voice's release here
                fade = max(0.0, 1.0 - (now - n.t_off) / self.release_s)
            self.frames.put(slot, tables[i], noise[i] * (self._noise_scale * fade), float(f0[i]), arrival)
