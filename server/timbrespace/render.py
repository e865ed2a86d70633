"""``timbrespace render``: a score of OSC messages rendered offline, block by block, deterministically.

The score goes through the same :class:`~timbrespace.app.App`, engine, mailbox and
:class:`~timbrespace.audio.player.Player` as the live server; a message whose time falls inside
a block is applied at the start of the next block, as the live server applies a packet that
arrives mid-block. Only the clock differs: virtual here, so the result never varies.

A score is YAML: either a list of events or a mapping with ``events`` and optional ``duration``
(seconds, default: last event + ``tail``) and ``tail`` (default 2 s)::

    - {time: 0.0, address: /patch/load, args: [BriansBank01/basic11]}
    - {time: 0.1, address: /note, args: [69, 100]}
    - {time: 1.0, address: /note, args: [69, 0]}

A mapping may also name a WAV file played as the live input (``input: take.wav``, or
``input: {file: take.wav, loop: true}``; relative to the score's folder), which ``/input 1``
starts, as ``serve --input`` does (docs/live-transfer.md).
"""

from __future__ import annotations

import math
import wave
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import yaml

from timbrespace.config import Config
from timbrespace.fsutil import atomic_write_bytes
from timbrespace.link.input import InputPlan
from timbrespace.link.mailbox import PatchMailbox

MAX_DURATION = 3600.0


class ScoreError(ValueError):
    """A score that cannot be read; the text names the file, the item and what was expected."""


@dataclass(frozen=True)
class Event:
    """One timed OSC message."""

    time: float
    address: str
    args: tuple[Any, ...] = ()


@dataclass(frozen=True)
class ScoreInput:
    """The WAV file a score plays as the live input."""

    file: Path
    loop: bool = False


@dataclass
class Score:
    """Events in time order plus the total duration (and the live input's file, if any)."""

    events: list[Event]
    duration: float
    input: ScoreInput | None = None

    def __len__(self) -> int:
        return len(self.events)


@dataclass
class RenderResult:
    """Rendered audio and what the server would have answered."""

    audio: npt.NDArray[np.float32]
    sample_rate: int
    failures: list[str] = field(default_factory=list)
    replies: list[tuple[float, str, tuple[Any, ...]]] = field(default_factory=list)


def parse_score(data: object, source: str = "score") -> Score:
    """Validate plain data as a score."""
    tail = 2.0
    duration: float | None = None
    live: ScoreInput | None = None
    if isinstance(data, dict):
        unknown = set(data) - {"events", "duration", "tail", "input"}
        if unknown:
            raise ScoreError(f"{source}: unknown key {sorted(unknown)[0]!r}; expected events, duration, tail, input")
        tail = _number(data.get("tail", tail), f"{source}: tail")
        if "duration" in data:
            duration = _number(data["duration"], f"{source}: duration")
        if "input" in data:
            live = _input(data["input"], f"{source}: input")
        data = data.get("events", [])
    if not isinstance(data, list):
        raise ScoreError(f"{source}: expected a list of events or a mapping with 'events'")
    events: list[Event] = []
    for i, item in enumerate(data):
        where = f"{source}: event {i}"
        if not isinstance(item, dict):
            raise ScoreError(f"{where}: expected a mapping {{time, address, args}}, got {item!r}")
        extra = set(item) - {"time", "address", "args"}
        if extra:
            raise ScoreError(f"{where}: unknown key {sorted(extra)[0]!r}; expected time, address, args")
        t = _number(item.get("time"), f"{where}: time")
        address = item.get("address")
        if not isinstance(address, str) or not address.startswith("/"):
            raise ScoreError(f"{where}: address must be a string starting with '/', got {address!r}")
        args = item.get("args", [])
        if not isinstance(args, list):
            args = [args]
        events.append(Event(t, address, tuple(args)))
    events.sort(key=lambda e: e.time)  # stable: same-time events keep their order
    end = events[-1].time if events else 0.0
    total = duration if duration is not None else end + tail
    if total > MAX_DURATION:
        raise ScoreError(f"{source}: duration {total:g} s is longer than the {MAX_DURATION:g} s allowed")
    return Score(events, total, live)


def _input(value: object, where: str) -> ScoreInput:
    if isinstance(value, str) and value:
        return ScoreInput(Path(value))
    if isinstance(value, dict) and set(value) <= {"file", "loop"} and isinstance(value.get("file"), str) \
            and value["file"] and isinstance(value.get("loop", False), bool):
        return ScoreInput(Path(value["file"]), bool(value.get("loop", False)))
    raise ScoreError(f"{where}: expected a WAV file's path or {{file: PATH, loop: true|false}}, got {value!r}")


def _number(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ScoreError(f"{where}: expected a number of seconds >= 0, got {value!r}")
    return float(value)


def load_score(path: Path) -> Score:
    """Read and validate a YAML score file."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ScoreError(f"cannot read score {path}: {e.strerror}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ScoreError(f"{path}: not valid YAML: {e}") from None
    score = parse_score(data, str(path))
    if score.input is not None and not score.input.file.is_absolute():
        score.input = ScoreInput(path.parent / score.input.file, score.input.loop)
    return score


class LocalLink:
    """The synth link of a render: an in-process queue and mailbox instead of a socket."""

    def __init__(self, layers: int = 1) -> None:
        self.queue: deque[bytes] = deque()
        self.mailboxes = [PatchMailbox() for _ in range(layers)]
        self.replies: list[bytes] = []

    @property
    def mailbox(self) -> PatchMailbox:
        """Layer 0's patch slot."""
        return self.mailboxes[0]

    def send(self, data: bytes) -> bool:
        """Queue an event command."""
        self.queue.append(data)
        return True

    def put_patch(self, values: npt.NDArray[np.float64], arrival: float, layer: int = 0) -> None:
        """Publish ``layer``'s newest patch."""
        self.mailboxes[layer].put(values, arrival)

    def receive(self) -> bytes | None:
        """The next queued command (player side)."""
        return self.queue.popleft() if self.queue else None


def render_score(cfg: Config, score: Score) -> RenderResult:
    """Render a score through the same app, engines and synths the server runs."""
    from timbrespace.app import App, ServerInfo, SessionSettings
    from timbrespace.audio.master import master_bus
    from timbrespace.audio.offline import OfflineRenderer
    from timbrespace.audio.parts import LayerMix, build_parts, player_args
    from timbrespace.audio.player import LayerVoices, Player
    from timbrespace.engines.inference import InlineInference
    from timbrespace.engines.registry import Wiring, prepare_all
    from timbrespace.link import commands as C
    from timbrespace.link.frames import FrameSlots
    from timbrespace.link.layers import LayerSound
    from timbrespace.link.stats import AudioStats
    from timbrespace.protocol.transport import Incoming, Peer

    if score.input is not None:
        from timbrespace.audio.live_input import LiveInput
        from timbrespace.input_follow import InputFollower
        from timbrespace.link.input import InputShared

    sr, bs = cfg.audio.sample_rate, cfg.audio.block_size
    period = bs / sr
    now = [0.0]
    n_layers = len(cfg.layers)
    link = LocalLink(n_layers)
    prepared = prepare_all(cfg, "cpu")  # on the CPU, whatever the config says: the same bits on every machine
    input_plan = _input_plan(cfg, score, prepared)
    plans = [p.audio() for p in prepared.values()]
    frames = [{p.engine: FrameSlots(p.frames.slots, p.frames.table_size, p.frames.n_noise)
               for p in plans if p.frames is not None} for _ in range(n_layers)]
    # The models run inline, pending work at each block's start: the same batches, no thread, no clock.
    inference = InlineInference(link, eager=False)
    layers = [[p.build(Wiring(inference.link, sr, period, frames[i].get(name), clock=lambda: now[0],
                              inference=inference, layer=i), None)
               for name, p in prepared.items()] for i in range(n_layers)]
    follower = None
    if input_plan is not None:
        follower = InputFollower.build(cfg, prepared["timbre"], inference, InputShared(),
                                       FrameSlots(1, input_plan.table_size, len(input_plan.noise_centres_hz)),
                                       sr, input_plan, clock=lambda: now[0])
    app = App(layers, inference.link, ServerInfo("offline", sr, bs, "cpu"), clock=lambda: now[0],
              settings=SessionSettings(collisions=tuple((la.collision, la.hold) for la in cfg.layers),
                                       sounds=tuple(LayerSound(la.gain, la.pan) for la in cfg.layers)),
              live_input=follower)
    peer = Peer("udp", "render", 0)
    result = RenderResult(np.zeros((0, cfg.audio.channels), np.float32), sr)
    n_blocks = max(1, math.ceil(score.duration * sr / bs))
    events = deque(score.events)
    next_tick = next_input_tick = 0.0
    with OfflineRenderer(sample_rate=sr, block_size=bs, channels=cfg.audio.channels) as r:
        parts = [build_parts(plans, f, sr, cfg.audio.polyphony) for f in frames]
        live = None
        if input_plan is not None and follower is not None:
            live = LiveInput(input_plan, follower.shared, follower.frames, sr, bs)
        mix = LayerMix([({name: part.output for name, part in lp.items()}, layer.engine.name,
                         LayerSound(la.gain, la.pan)) for lp, layer, la in zip(parts, app.layers, cfg.layers)],
                       {input_plan.layer: live.output} if live is not None and input_plan is not None else None)
        bus = master_bus(mix.output, cfg.audio.ceiling_db)
        capture = r.capture(bus.output, n_blocks * period)
        player = Player([LayerVoices(mailbox=box, select=em.select, place=partial(mix.place, i), **player_args(lp))
                         for i, (box, em, lp) in enumerate(zip(link.mailboxes, mix.engines, parts, strict=True))],
                        AudioStats(), link.receive, link.replies.append)
        if cfg.engine != app.engine.name:
            for layer in app.layers:
                app.select(cfg.engine, 0.0, layer.index)
        for k in range(n_blocks):
            t = k * period
            now[0] = t
            while events and events[0].time <= t + 1e-12:
                ev = events.popleft()
                for address, args in app.handle(Incoming(ev.address, ev.args, peer, 0.0)):
                    result.replies.append((ev.time, address, args))
                    if address == "/fail":
                        result.failures.append(f"{ev.time:.3f} s {ev.address}: {args[1]}")
            tick = app.engine.tick_period
            if tick is not None and t + 1e-12 >= next_tick:  # the live server's tick grid, in virtual time
                app.engine.tick(t)
                next_tick = max(next_tick + tick, t)
            if follower is not None and t + 1e-12 >= next_input_tick:  # the live server's grid, too
                follower.tick(t)
                next_input_tick = max(next_input_tick + follower.tick_period, t)
            app.flush()
            inference.flush()
            player.block(t)
            if live is not None:
                live.block()
            r.process_block()
        for data in link.replies:
            synced = app.on_synced(int(C.decode(data).args[0]))
            if synced is not None:
                result.replies.append((score.duration, *synced[1]))
        result.audio = capture.array()
    return result


def _input_plan(cfg: Config, score: Score, prepared: Mapping[str, Any]) -> InputPlan | None:
    """What the audio side of the score's input is built from; ScoreError for a file or server that cannot."""
    if score.input is None:
        return None
    from timbrespace.input_file import InputFileError
    from timbrespace.input_follow import input_plan

    if "timbre" not in prepared:
        raise ScoreError("the score's input needs the timbre engine, which does not run here (timbre.enabled, "
                         "timbre.model)")
    try:
        return input_plan(cfg, prepared["timbre"], score.input.file, score.input.loop)
    except InputFileError as e:
        raise ScoreError(str(e)) from None


def write_wav(path: Path, audio: npt.NDArray[np.float32], sample_rate: int) -> None:
    """16-bit PCM WAV, written atomically."""
    import io

    pcm = (np.clip(audio, -1.0, 1.0) * 32767.0).round().astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(audio.shape[1])
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm.tobytes())
    atomic_write_bytes(path, buf.getvalue())
