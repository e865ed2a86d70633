"""``timbrespace bench``'s timbre section: the timbre engine's control-side cost per tick."""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any

from timbrespace.config import Config
from timbrespace.session.context import local


def bench_timbre(cfg: Config, quick: bool) -> dict[str, Any] | None:
    """The timbre engine's control-side cost per tick: the decoder alone, and decode + wavetables."""
    if not cfg.timbre.model.exists():
        return None
    out: dict[str, Any] = {}
    for device in ["cpu"] + (["cuda"] if _cuda() else []):
        out.update(_bench_timbre_on(cfg, device, 100 if quick else 500))
    return out


class _NullLink:
    """A synth link that drops everything (the bench times the control side only)."""

    def send(self, data: bytes) -> bool:
        return True

    def put_patch(self, values: Any, arrival: float, layer: int = 0) -> None:
        pass


def _bench_timbre_on(cfg: Config, device: str, n: int) -> dict[str, Any]:
    import numpy as np

    from timbrespace.engines.registry import Wiring
    from timbrespace.engines.timbre_setup import PreparedTimbre, prepare
    from timbrespace.link.frames import FrameSlots

    # Measured whether or not the config lets the server run it.
    prepared = prepare(dataclasses.replace(cfg, timbre=dataclasses.replace(cfg.timbre, enabled=True)), device)
    assert isinstance(prepared, PreparedTimbre)  # the model exists: bench_timbre looked
    space = prepared.space
    out: dict[str, Any] = {"hop_ms": round(space.hop_s * 1000.0, 3)}
    for voices in (1, 16):
        args = (np.repeat(space.means[:1], voices, axis=0), np.arange(48, 48 + voices, dtype=np.float64),
                np.full(voices, 10), np.full(voices, 100.0))
        out[f"decode_{device}_{voices}"] = _timed(functools.partial(space.frames, *args), n)
    shape = prepared.audio().frames
    assert shape is not None
    # Built as the server builds it; at least 16 slots, so that 16 notes sound at once.
    frames = FrameSlots(max(shape.slots, 16), shape.table_size, shape.n_noise)
    engine = prepared.build(Wiring(_NullLink(), cfg.audio.sample_rate, cfg.audio.block_size / cfg.audio.sample_rate,
                                   frames, clock=lambda: 0.0), None)
    for p in range(16):
        engine.note(48 + p, 100, 0.0)
    out[f"tick_{device}_16"] = _timed(functools.partial(engine.tick, 0.1), n)
    if space.learned_map is not None:  # the map point moving every tick: one map decode more
        ctx = local()
        engine.handlers()["/map"](("learned",), ctx)
        move = engine.handlers()["/latent"]
        step = iter(range(10**9))

        def moving_tick() -> None:
            k = next(step)
            move(((k % 97) / 96.0, (k % 89) / 88.0), ctx)
            engine.tick(0.1)

        out[f"tickmap_{device}_16"] = _timed(moving_tick, n)
    return out


def _cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def _timed(fn: Any, n: int) -> dict[str, float]:
    import numpy as np

    for _ in range(max(5, n // 10)):
        fn()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    ms = np.asarray(times) * 1000.0
    return {"p50_ms": round(float(np.median(ms)), 4), "p99_ms": round(float(np.percentile(ms, 99)), 4)}
