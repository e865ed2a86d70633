"""Server state persisted across restarts: a JSON file written atomically."""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from timbrespace.fsutil import atomic_write_text
from timbrespace.protocol.addresses import BY_PATH
from timbrespace.protocol.declaration import Arg
from timbrespace.session.collision import POLICIES

log = logging.getLogger(__name__)

#: Version 2 keeps every layer; a version 1 file (one layer, before layers) is read as layer 0.
STATE_VERSION = 2


@dataclass
class SavedInput:
    """The live input's settings set live (``/input ...``), on the layer it belongs to; None: not saved."""

    on: bool | None = None
    target: str | None = None
    alpha: float | None = None
    gain: float | None = None
    transpose: float | None = None
    dry: float | None = None
    gate: float | None = None


#: The state file's input keys and the addresses whose argument each is checked against.
_INPUT_KEYS = {"alpha": "/input/alpha", "gain": "/input/gain", "transpose": "/input/transpose", "dry": "/input/dry",
               "gate": "/input/gate"}


@dataclass
class SavedLayer:
    """One layer's engines' snapshots, by engine name, the engine that was heard, and the layer's
    own settings set live (``/mix/gain``, ``/mix/pan``, ``/collision``); None: not saved."""

    engines: dict[str, Any] = field(default_factory=dict)
    active: str | None = None
    gain: float | None = None
    pan: float | None = None
    collision: str | None = None
    hold: float | None = None
    input: SavedInput | None = None


@dataclass
class SavedState:
    """Every layer's saved state, by index."""

    layers: list[SavedLayer] = field(default_factory=list)

    def layer(self, index: int) -> SavedLayer:
        """Layer ``index``'s state (empty when none was saved)."""
        return self.layers[index] if 0 <= index < len(self.layers) else SavedLayer()

    @property
    def engines(self) -> dict[str, Any]:
        """Layer 0's engines (what the config's initial keys are for)."""
        return self.layer(0).engines

    @property
    def active(self) -> str | None:
        """Layer 0's engine heard."""
        return self.layer(0).active


def load_state(path: Path, *, fresh: bool = False) -> SavedState:
    """The saved state, or an empty one when there is none, it cannot be read or ``fresh`` (logged).

    What is restored is logged in one line: a saved state silently overriding the config
    (``patch.initial_preset``, ``engine``, ...) looks like the config being ignored.
    """
    if fresh:
        log.info("state: --fresh: %s not restored; starting from the config (the state is saved there at exit)",
                 path)
        return SavedState()
    state = _read_state(path)
    log.info("%s", describe(state, path))
    return state


def _read_state(path: Path) -> SavedState:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return SavedState()
    except (OSError, ValueError) as e:
        log.warning("state file %s ignored: %s", path, e)
        return SavedState()
    version = data.get("version") if isinstance(data, dict) else None
    if not isinstance(data, dict) or version not in (1, STATE_VERSION):
        log.warning("state file %s ignored: not a version 1 or %d state", path, STATE_VERSION)
        return SavedState()
    layers = [data] if version == 1 else data.get("layers")
    if not isinstance(layers, list):
        log.warning("state file %s ignored: its layers are not a list", path)
        return SavedState()
    return SavedState([_layer(x) for x in layers])


def _layer(data: object) -> SavedLayer:
    if not isinstance(data, dict):
        return SavedLayer()
    engines, active = data.get("engines"), data.get("active")
    out = SavedLayer(engines if isinstance(engines, dict) else {}, active if isinstance(active, str) else None)
    mix, collision = data.get("mix"), data.get("collision")
    if isinstance(mix, dict):
        out.gain = _setting("mix.gain", mix.get("gain"), BY_PATH["/mix/gain"].args[0])
        out.pan = _setting("mix.pan", mix.get("pan"), BY_PATH["/mix/pan"].args[0])
    if isinstance(collision, dict):
        policy = collision.get("policy")
        if policy in POLICIES:
            out.collision = str(policy)
        elif policy is not None:
            log.warning("state: collision.policy = %r is not one of %s; using the config's", policy,
                        ", ".join(POLICIES))
        out.hold = _setting("collision.hold", collision.get("hold"), BY_PATH["/collision"].args[1])
    saved_input = data.get("input")
    if isinstance(saved_input, dict):
        out.input = _input(saved_input)
    return out


def _input(data: dict[str, Any]) -> SavedInput:
    """The input's saved settings, each checked like its address's argument (a bad one: the config's)."""
    alpha, gain, transpose, dry, gate = (_setting(f"input.{k}", data.get(k), BY_PATH[a].args[0])
                                         for k, a in _INPUT_KEYS.items())
    out = SavedInput(alpha=alpha, gain=gain, transpose=transpose, dry=dry, gate=gate)
    on, target = data.get("on"), data.get("target")
    if isinstance(on, bool):
        out.on = on
    elif on is not None:
        log.warning("state: input.on = %r is not true or false; the input starts off", on)
    if isinstance(target, str) and target:
        out.target = target
    elif target is not None:
        log.warning("state: input.target = %r is not an instrument's name; using the config's", target)
    return out


def _setting(key: str, value: object, arg: Arg) -> float | None:
    """A layer setting from the state file, checked like its OSC address's argument; None (the
    config's value) when absent or invalid (the latter with a warning)."""
    if value is None:
        return None
    v = checked_arg(key, value, arg, math.nan)
    return None if math.isnan(v) else v


#: Config keys a saved state overrides, by the state entry that does: (engine or None, entry key).
OVERRIDES: dict[str, tuple[str | None, str]] = {
    "engine": (None, "active"),
    "patch.initial_preset": ("patch", ""),  # any saved patch state: its sound, point and ends
    "patch.initial_latent": ("patch", ""),
    "timbre.corners": ("timbre", "corners"),
    "timbre.map": ("timbre", "map"),
}


def overridden(state: SavedState) -> list[str]:
    """The config keys ``state`` overrides when restored (see :data:`OVERRIDES`)."""
    out = []
    for key, (engine, entry) in OVERRIDES.items():
        if engine is None:
            hit = state.active is not None
        else:
            saved = state.engines.get(engine)
            hit = isinstance(saved, dict) and (not entry or entry in saved)
        if hit:
            out.append(key)
    return out


def describe(state: SavedState, path: Path) -> str:
    """One line for the start-up log: what is restored from where, and what it overrides."""
    if not state.engines and state.active is None:
        return f"state: nothing saved in {path}; starting from the config"
    keys = overridden(state)
    what = ", ".join(state.engines) or "no engine"
    if len(state.layers) > 1:
        what = f"{len(state.layers)} layers' ({what} on layer 0)"
    heard = f", {state.active} engine heard" if state.active else ""
    return (f"state: restored {what} state{heard} from {path}; it overrides the config's "
            f"{', '.join(keys) or 'nothing'} (serve --fresh starts from the config)")


def checked(key: str, value: object, lo: float, hi: float, default: float) -> float:
    """A number from the state file, validated like OSC input: finite and in ``[lo, hi]``.

    Anything else (NaN, inf, out of range, not a number) becomes ``default``, with one warning
    naming the key, the value and the allowed range; so a bad value is never written back.
    """
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    v = float(value) if ok else math.nan  # type: ignore[arg-type]
    if math.isfinite(v) and lo <= v <= hi:
        return v
    instead = "the config's value" if math.isnan(default) else f"the default {default:g}"
    log.warning("state: %s = %r is not a number in [%g, %g]; using %s", key, value, lo, hi, instead)
    return default


def checked_arg(key: str, value: object, arg: Arg, default: float) -> float:
    """A state value checked against the range its OSC address declares (see :func:`checked`)."""
    lo = -math.inf if arg.lo is None else arg.lo
    hi = math.inf if arg.hi is None else arg.hi
    return checked(key, value, lo, hi, default)


def encode_state(layers: list[dict[str, Any]]) -> str:
    """The state file's text from each layer's ``{"engines": ..., "active": ...}``; ValueError for a
    value JSON cannot hold (NaN, inf)."""
    data: dict[str, Any] = {"version": STATE_VERSION, "layers": layers}
    # allow_nan=False: a NaN would be written as the non-JSON token NaN and poison the next start.
    return json.dumps(data, indent=1, allow_nan=False) + "\n"


def save_state(path: Path, layers: list[dict[str, Any]]) -> None:
    """Persist each layer's engines' snapshots and which one is heard."""
    atomic_write_text(path, encode_state(layers))
