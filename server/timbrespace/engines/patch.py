"""The amSynth patch engine: a 2-D map of presets decoded by the patch VAE, presets, parameters.

Map points are decoded by the inference worker (:mod:`timbrespace.engines.inference`): a move
submits its point, replacing the one still waiting, and the decoded patch reaches the mailbox
from the event loop, in order with everything sent after the move (a note, a ``/sync``, a
``/param`` edit apply to the moved patch). The presets' places in the map are encoded once, when
the engine is made, and each saved preset's in the background, so no handler waits on the model.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import numpy.typing as npt

from timbrespace.engines.base import Engine, Handler, HandlerError, RawLink, Reply
from timbrespace.engines.inference import Inference, InlineInference, Job, LayerLink
from timbrespace.engines.registry import BY_NAME
from timbrespace.models.patch_path import PathPlan
from timbrespace.models.patch_space import PatchSpace
from timbrespace.patch import params
from timbrespace.patch.library import PresetLibrary
from timbrespace.protocol.addresses import BY_PATH
from timbrespace.protocol.declaration import Value, show
from timbrespace.protocol.replies import UDP_REPLY_FLOOR, clip
from timbrespace.ratelog import RateLimitedLog
from timbrespace.session.context import Context
from timbrespace.state import checked, checked_arg

log = logging.getLogger(__name__)

#: Bytes of one /patch/list.reply at most: a page fits the reply budget of any UDP request, so
#: a client that has not proved its address can still list everything, a page at a time.
LIST_PAGE_BYTES = 256
assert LIST_PAGE_BYTES <= UDP_REPLY_FLOOR
#: The last argument of /patch/load.reply when another engine is heard.
NOT_HEARD = "not heard: the timbre engine is heard; send /engine patch to hear it"
_log_save = RateLimitedLog(log, 5, "save failures")
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class PatchDecode:
    """Map points to patches, batched: inputs ``(point, is_unit)``, results amSynth values ``(41,)``."""

    space: PatchSpace

    def run(self, inputs: Sequence[tuple[FloatArray, bool]]) -> list[FloatArray]:
        """Decode every point in one model call."""
        points = np.array([p for p, _ in inputs], dtype=np.float64)
        unit = np.array([u for _, u in inputs], dtype=bool)
        z = np.where(unit[:, None], self.space.unit_to_latent(np.clip(points, 0.0, 1.0)), points)
        return list(self.space.decode_latent(z))


class PatchPathDecode:
    """Points along a /source -> /target route to patches (:meth:`PatchSpace.decode_path`), one engine's:
    inputs ``(source, target, alpha)``, results (amSynth values ``(41,)``, the latent point ``(2,)``).
    The plans of the last few pairs are kept, so a fader sweeping /alpha routes and reads the decoder
    along its way once."""

    PLANS = 4  # pairs remembered: a client alternating among a few pairs is not re-planned every move

    def __init__(self, space: PatchSpace) -> None:
        self.space = space
        self._plans: OrderedDict[bytes, PathPlan] = OrderedDict()  # only the worker thread touches it

    def _plan(self, source: FloatArray, target: FloatArray) -> PathPlan:
        key = source.tobytes() + target.tobytes()
        found = self._plans.get(key)
        if found is None:
            found = self._plans[key] = self.space.path_plan(source, target)
            while len(self._plans) > self.PLANS:
                self._plans.popitem(last=False)
        else:
            self._plans.move_to_end(key)
        return found

    def run(self, inputs: Sequence[tuple[FloatArray, FloatArray, float]]) -> list[tuple[FloatArray, FloatArray]]:
        """Each point on its pair's plan (a batch rarely holds more than one: one pending point per engine)."""
        out = []
        for s, t, alpha in inputs:
            plan = self._plan(s, t)
            out.append((self.space.decode_path(plan, [alpha])[0], plan.blend([alpha])[0]))
        return out


@dataclass(frozen=True)
class PatchEncode:
    """Patches to latent points (where the sound index placed them, else posterior means), batched: inputs
    values ``(41,)``, results ``(2,)``."""

    space: PatchSpace

    def run(self, inputs: Sequence[FloatArray]) -> list[FloatArray]:
        """Encode every patch in one model call."""
        return list(self.space.encode_latent(np.stack(inputs)))


def encode_all(space: PatchSpace, library: PresetLibrary) -> dict[int, FloatArray]:
    """Every preset's latent point, by index."""
    return dict(enumerate(space.encode_latent(library.values()))) if len(library) else {}


class PatchEngine(Engine):
    """Serves /latent, /source, /target, /alpha, /patch/* and /param."""

    name = "patch"
    item = BY_NAME[name].item
    link: LayerLink

    def __init__(
        self,
        space: PatchSpace,
        library: PresetLibrary,
        link: RawLink,
        *,
        block_period: float,
        clock: Callable[[], float] = time.monotonic,
        inference: Inference | None = None,
        layer: int = 0,
        latents: dict[int, FloatArray] | None = None,
    ) -> None:
        super().__init__()
        self.space = space
        self.library = library
        #: Runs the model; None: inline, at once (tests, tools).
        self.inference = inference if inference is not None else InlineInference(link)
        #: The layer this engine plays (its commands and patches go to that layer's voices).
        self.layer = layer
        self.link = self.inference.link.layer(layer)
        self.block_period = block_period
        self.clock = clock
        self.xy: tuple[float, float] = (0.5, 0.5)
        # Bumped whenever the map point is set: a route point landing from the worker applies only if
        # nothing (a /latent, a load, a newer /alpha) set it after its /alpha.
        self._placed = 0
        self.z_source: npt.NDArray[np.float64] | None = None
        self.z_target: npt.NDArray[np.float64] | None = None
        self.source = ""
        self.target = ""
        self.alpha = 0.0
        self.values = params.DEFAULTS.copy()
        self.preset = ""  # the loaded preset's bank/name while it is unmodified
        self.decodes = 0
        self._decode = PatchDecode(space)
        self._path = PatchPathDecode(space)
        self._encode = PatchEncode(space)
        # Every preset's latent point (for /source, /target and /patch/load's reply), encoded before
        # the engine serves; a preset saved later is encoded by the inference worker. The layers'
        # engines share one library, so they share this table (``latents``) rather than each
        # encoding every preset again.
        self._latents = encode_all(space, library) if latents is None else latents

    # -- engine interface ------------------------------------------------------------------------
    def handlers(self) -> dict[str, Handler]:
        """Address -> handler."""
        return {
            "/latent": self._latent,
            "/source": self._source,
            "/target": self._target,
            "/alpha": self._alpha,
            "/patch/load": self._load,
            "/patch/save": self._save,
            "/patch/list": self._list,
            "/param": self._param,
        }

    def snapshot(self) -> dict[str, Any]:
        """Plain-data state."""
        return {
            "engine": self.name,
            "xy": [float(v) for v in self.xy],
            "source": self.source,
            "target": self.target,
            "alpha": self.alpha,
            "preset": self.preset,
            "values": {n: float(v) for n, v in zip(params.NAMES, self.values)},
        }

    def state_messages(self) -> list[Reply]:
        """/latent, /source, /target, /alpha, every /param, and /patch/load.reply while a preset is unmodified."""
        out: list[Reply] = [("/latent", self.xy), ("/alpha", (self.alpha,))]
        out += [(w, (name,)) for w, name in (("/source", self.source), ("/target", self.target)) if name]
        out += [("/param", (n, v)) for n, v in zip(params.NAMES, self.values.tolist())]
        if self.preset and self.knows(self.preset):
            heard = "heard" if self.heard else NOT_HEARD
            out.append(("/patch/load.reply", (self.library.resolve(self.preset), self.preset, *self.xy, heard)))
        return out

    def restore(self, state: Mapping[str, Any]) -> None:
        """Take back a snapshot, validated like OSC input; what no longer resolves is skipped (logged)."""
        try:
            xy = state.get("xy", self.xy)
            if isinstance(xy, list | tuple) and len(xy) == 2:
                lat = BY_PATH["/latent"].args
                self.xy = (checked_arg("patch.xy[0]", xy[0], lat[0], self.xy[0]),
                           checked_arg("patch.xy[1]", xy[1], lat[1], self.xy[1]))
                self._placed += 1
            for which in ("source", "target"):
                name = state.get(which) or ""
                if name:
                    try:
                        self._set_end(which, name)
                    except HandlerError as e:
                        log.warning("state: %s", e)
            self.alpha = checked_arg("patch.alpha", state.get("alpha", 0.0), BY_PATH["/alpha"].args[0], 0.0)
            values = state.get("values")
            if isinstance(values, Mapping):
                v = self.values.copy()
                for n, x in values.items():
                    if n in params.INDEX:
                        p = params.spec(n)
                        v[params.INDEX[n]] = checked(f"patch.values.{n}", x, p.minimum, p.maximum, p.default)
                self.values = params.clamp_vector(v)
            self.preset = str(state.get("preset", ""))
        except (TypeError, ValueError) as e:
            log.warning("state: ignoring unreadable patch state (%s)", e)

    def activate(self, arrival: float) -> None:
        """Send the current patch to the synth (the newest: after a map point still being decoded)."""
        self.link.after(lambda: self.link.put_patch(self.values, arrival))

    def flush(self) -> None:
        """Decode pending map points now where the inference runs inline (the offline renderer)."""
        self.inference.flush()

    # -- helpers ---------------------------------------------------------------------------------
    def _move(self, point: FloatArray, unit: bool, arrival: float) -> None:
        """Decode ``point`` (unit square if ``unit``, else latent); it replaces a point still waiting."""
        self.inference.submit(Job(self._decode, (point, unit), partial(self._decoded, arrival),
                                  owner=(self, "point"), ordered=True))

    def _decoded(self, arrival: float, values: FloatArray) -> None:
        self.values = values
        self.preset = ""
        self.decodes += 1
        self.link.put_patch(values, arrival)
        self._changed()

    def _latent_of(self, index: int) -> FloatArray:
        z = self._latents.get(index)
        if z is None:
            # Only a preset saved a moment ago, whose encoding has not landed yet.
            z = self.space.encode_latent(self.library[index].values[None, :])[0]
            self._latents[index] = z
        return z

    def _resolve(self, key: Value) -> int:
        # The declaration's "ref" kind yields an int index or a str name, never a float.
        try:
            return self.library.resolve(key if isinstance(key, str) else int(key))
        except LookupError as e:
            raise HandlerError(str(e).strip("'\"")) from None

    def knows(self, name: str) -> bool:
        try:
            self.library.resolve(name)
        except LookupError:
            return False
        return True

    def _set_end(self, which: str, key: Value) -> int:
        index = self._resolve(key)
        z = self._latent_of(index)
        label = self.library.qualified_name(index)
        if which == "source":
            self.z_source, self.source = z, label
        else:
            self.z_target, self.target = z, label
        return index

    def _blend(self, arrival: float) -> None:
        if self.z_source is None or self.z_target is None:
            return
        # Decoded along the pair's plan (its route, its switches changing once), not as a free map
        # point; it replaces a map point still waiting, as a move does. Where it lies on the map is
        # known once the route is.
        self._placed += 1
        pair = (self.z_source, self.z_target, self.alpha)
        self.inference.submit(Job(self._path, pair, partial(self._along, arrival, self._placed),
                                  owner=(self, "point"), ordered=True))

    def _along(self, arrival: float, placed: int, result: tuple[FloatArray, FloatArray]) -> None:
        values, z = result
        if placed == self._placed:
            self.xy = _pair(self.space.latent_to_unit(z[None, :])[0])
        self._decoded(arrival, values)

    # -- handlers --------------------------------------------------------------------------------
    def _latent(self, args: tuple[Value, ...], ctx: Context) -> list[Reply]:
        self.xy = (float(args[0]), float(args[1]))
        self._placed += 1
        self._move(np.array(self.xy), True, ctx.arrival)
        return []

    def _source(self, args: tuple[Value, ...], ctx: Context) -> list[Reply]:
        self._set_end("source", args[0])
        self._blend(ctx.arrival)
        return []

    def _target(self, args: tuple[Value, ...], ctx: Context) -> list[Reply]:
        self._set_end("target", args[0])
        self._blend(ctx.arrival)
        return []

    def _alpha(self, args: tuple[Value, ...], ctx: Context) -> list[Reply]:
        self.alpha = float(args[0])
        if self.z_source is None or self.z_target is None:
            missing = " and ".join(w for w, z in (("/source", self.z_source), ("/target", self.z_target))
                                   if z is None)
            raise HandlerError(f"/alpha needs {missing} first (a preset index or name)")
        self._blend(ctx.arrival)
        return []

    def _load(self, args: tuple[Value, ...], ctx: Context) -> list[Reply]:
        index = self._resolve(args[0])
        label = self.library.qualified_name(index)
        values = self.library[index].values.copy()
        self.inference.cancel((self, "point"))  # a point still waiting would only be overwritten
        self.xy = _pair(self.space.latent_to_unit(self._latent_of(index)[None, :])[0])
        self._placed += 1

        def load() -> None:  # after a point being decoded lands, which the load then replaces
            self.values, self.preset = values, label
            self.link.put_patch(values, ctx.arrival)
            self._changed()

        self.link.after(load)
        # Loaded either way (a patch can be prepared while the other engine plays), but a client
        # that expected to hear it must learn why it does not.
        heard = "heard" if self.heard else NOT_HEARD
        return [("/patch/load.reply", (index, label, *self.xy, heard))]

    def _save(self, args: tuple[Value, ...], ctx: Context) -> list[Reply]:
        name = str(args[0])
        self.flush()
        if not self.link.idle:  # the values to save are still being decoded; the reply must answer now
            raise HandlerError(f"/patch/save {show(name)}: a map move is still being decoded; send /sync, "
                               "then /patch/save again")
        try:
            self.library.append_user(name, self.values)
        except ValueError as e:
            raise HandlerError(f"/patch/save {show(name)}: {e}") from None
        except OSError as e:  # its text names the file's absolute path: not for the network
            _log_save.warning("/patch/save %r: %s", name[:80], e)
            raise HandlerError(f"/patch/save {show(name)}: could not write the user bank "
                               f"({e.strerror or type(e).__name__})") from None
        index = len(self.library) - 1
        label = self.library.qualified_name(index)
        self.preset = label
        self.inference.submit(Job(self._encode, self.library[index].values, partial(self._latents.__setitem__, index),
                                  owner=(self, "encode", index)))
        # The bank's file name, not its path: a reply must not tell the network where files live.
        bank = self.library.user_bank
        return [("/patch/save.reply", (index, label, bank.name if bank is not None else ""))]

    def _list(self, args: tuple[Value, ...], ctx: Context) -> list[Reply]:
        start, count = int(args[0]), int(args[1])
        return [("/patch/list.reply", (len(self.library), start, *self.page(start, count)))]

    def page(self, start: int, count: int, limit: int = LIST_PAGE_BYTES) -> list[str]:
        """Names from ``start``: at most ``count``, and as many as fit a reply of ``limit`` bytes."""
        names: list[str] = []
        nbytes = 0  # the names' padded bytes
        for i in range(start, min(start + count, len(self.library))):
            name = self.library.qualified_name(i)
            padded = (len(name.encode()) // 4 + 1) * 4
            if _list_size(len(names) + 1, nbytes + padded) > limit:
                if names:
                    break
                name = clip(name, limit - _list_size(1, 0) - 1)  # longer than a page: clipped, never skipped
                padded = (len(name.encode()) // 4 + 1) * 4
            names.append(name)
            nbytes += padded
        return names

    def _param(self, args: tuple[Value, ...], ctx: Context) -> list[Reply]:
        self.flush()
        i = params.INDEX[str(args[0])]
        value = params.PARAMS[i].clamp(float(args[1]))

        def edit() -> None:  # on the patch in effect once a point being decoded has landed
            v = self.values.copy()
            v[i] = value
            self.values = v
            self.preset = ""
            self.link.put_patch(v, ctx.arrival)
            self._changed()

        self.link.after(edit)
        return []


def _list_size(n: int, names_bytes: int) -> int:
    """Bytes of a /patch/list.reply with ``n`` names taking ``names_bytes`` (padded)."""
    return 20 + ((3 + n) // 4 + 1) * 4 + 8 + names_bytes  # address, ",ii" + n "s", two ints, names


def _pair(v: npt.NDArray[np.float64]) -> tuple[float, float]:
    return (float(v[0]), float(v[1]))
