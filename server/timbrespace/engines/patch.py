"""The amSynth patch engine: a 2-D map of presets decoded by the patch VAE, presets, parameters.

Decoding is coalesced: a map move decodes at once unless another decode happened less than half
an audio block ago; then the newest point waits until that half block is over (the owner's
``defer`` timer, or the offline renderer's per-block :meth:`flush`). A dragged XY pad (tens of
moves a second) is decoded move by move and heard at the next block; a flood of ``/latent`` costs
at most two decodes per block, heard within 1.5 blocks, and the synth, which applies only the
newest patch per block, hears what it would have heard.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from timbrespace.engines.base import Engine, Handler, HandlerError, Reply, SynthLink
from timbrespace.engines.registry import BY_NAME
from timbrespace.models.patch_space import PatchSpace
from timbrespace.patch import params
from timbrespace.patch.library import PresetLibrary
from timbrespace.protocol.addresses import BY_PATH, Value, show
from timbrespace.protocol.replies import UDP_REPLY_FLOOR, clip
from timbrespace.ratelog import RateLimitedLog
from timbrespace.session.context import Context
from timbrespace.state import checked, checked_arg

log = logging.getLogger(__name__)

#: Bytes of one /patch/list.reply at most: a page fits the reply budget of any UDP request, so
#: a client that has not proved its address can still list everything, a page at a time.
LIST_PAGE_BYTES = UDP_REPLY_FLOOR
#: The last argument of /patch/load.reply when another engine is heard.
NOT_HEARD = "not heard: the timbre engine is heard; send /engine patch to hear it"
_log_save = RateLimitedLog(log, 5, "save failures")


class PatchEngine(Engine):
    """Serves /latent, /source, /target, /alpha, /patch/* and /param."""

    name = "patch"
    item = BY_NAME[name].item

    def __init__(
        self,
        space: PatchSpace,
        library: PresetLibrary,
        link: SynthLink,
        *,
        block_period: float,
        clock: Callable[[], float] = time.monotonic,
        defer: Callable[[float], None] | None = None,
    ) -> None:
        super().__init__()
        self.space = space
        self.library = library
        self.link = link
        self.window = block_period / 2.0
        self.clock = clock
        #: Asks the owner to call flush() after a delay; None: the owner flushes every block anyway.
        self.defer = defer
        self.xy: tuple[float, float] = (0.5, 0.5)
        self.z_source: npt.NDArray[np.float64] | None = None
        self.z_target: npt.NDArray[np.float64] | None = None
        self.source = ""
        self.target = ""
        self.alpha = 0.0
        self.values = params.DEFAULTS.copy()
        self.preset = ""  # the loaded preset's bank/name while it is unmodified
        # (latent point, or None for "the unit point self.xy", arrival): converted only when decoded,
        # so a flood of /latent costs no numpy work per message.
        self._pending: tuple[npt.NDArray[np.float64] | None, float] | None = None
        self._last_decode = -1e9
        self.decodes = 0

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
        out += [("/param", (n, float(v))) for n, v in zip(params.NAMES, self.values)]
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
        """Send the current patch to the synth."""
        self.link.put_patch(self.values, arrival)

    def flush(self) -> None:
        """Decode the newest pending map point, if any."""
        if self._pending is not None:
            z, arrival = self._pending
            self._pending = None
            self._decode(z, arrival)

    # -- helpers ---------------------------------------------------------------------------------
    def _move(self, z: npt.NDArray[np.float64] | None, arrival: float) -> None:
        now = self.clock()
        if now - self._last_decode >= self.window:
            self._pending = None
            self._decode(z, arrival)
        else:
            if self._pending is None and self.defer is not None:
                self.defer(self.window - (now - self._last_decode))
            self._pending = (z, arrival)

    def _decode(self, z: npt.NDArray[np.float64] | None, arrival: float) -> None:
        if z is None:
            z = self.space.unit_to_latent(np.array([self.xy]))[0]
        self.values = self.space.decode_latent(z[None, :])[0]
        self.preset = ""
        self._last_decode = self.clock()
        self.decodes += 1
        self.link.put_patch(self.values, arrival)

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
        z = self.space.encode_latent(self.library[index].values[None, :])[0]
        label = self.library.qualified_name(index)
        if which == "source":
            self.z_source, self.source = z, label
        else:
            self.z_target, self.target = z, label
        return index

    def _blend(self, arrival: float) -> None:
        if self.z_source is None or self.z_target is None:
            return
        z = (1.0 - self.alpha) * self.z_source + self.alpha * self.z_target
        self.xy = _pair(self.space.latent_to_unit(z[None, :])[0])
        self._move(z, arrival)

    # -- handlers --------------------------------------------------------------------------------
    def _latent(self, args: tuple[Value, ...], ctx: Context) -> list[Reply]:
        self.xy = (float(args[0]), float(args[1]))
        self._move(None, ctx.arrival)
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
        preset = self.library[index]
        self._pending = None
        self.values = preset.values.copy()
        self.preset = self.library.qualified_name(index)
        self.xy = _pair(self.space.encode_unit(self.values[None, :])[0])
        self.link.put_patch(self.values, ctx.arrival)
        # Loaded either way (a patch can be prepared while the other engine plays), but a client
        # that expected to hear it must learn why it does not.
        heard = "heard" if self.heard else NOT_HEARD
        return [("/patch/load.reply", (index, self.preset, *self.xy, heard))]

    def _save(self, args: tuple[Value, ...], ctx: Context) -> list[Reply]:
        name = str(args[0])
        self.flush()
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
        v = self.values.copy()
        v[i] = params.PARAMS[i].clamp(float(args[1]))
        self.values = v
        self.preset = ""
        self.link.put_patch(self.values, ctx.arrival)
        return []


def _list_size(n: int, names_bytes: int) -> int:
    """Bytes of a /patch/list.reply with ``n`` names taking ``names_bytes`` (padded)."""
    return 20 + ((3 + n) // 4 + 1) * 4 + 8 + names_bytes  # address, ",ii" + n "s", two ints, names


def _pair(v: npt.NDArray[np.float64]) -> tuple[float, float]:
    return (float(v[0]), float(v[1]))
