"""Typed configuration, loaded once from YAML and validated.

Every error names the key (dotted path), the value given and what is allowed. Relative paths in
a config file are taken relative to the repository root when they exist there (so the shipped
``config/default.yaml`` works from any working directory), else to the config file's folder.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from timbrespace.link.input import even_window, window_for
from timbrespace.link.layers import GAIN_RANGE, PAN_RANGE
from timbrespace.session.collision import HOLD_RANGE

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = REPO_ROOT / "config" / "default.yaml"


class ConfigError(ValueError):
    """A configuration value that is missing, of the wrong type or out of range."""


def _rng(lo: float | None = None, hi: float | None = None) -> dict[str, Any]:
    return {"range": (lo, hi)}


@dataclass
class NetworkConfig:
    """Where and how the server listens and advertises."""

    host: str = "0.0.0.0"
    port: int = field(default=57130, metadata=_rng(0, 65535))
    tcp_framing: Literal["slip", "length"] = "slip"
    #: The largest packet taken, in bytes: a UDP datagram or a TCP frame (an unfinished SLIP
    #: frame may hold twice this, escaped).
    max_datagram: int = field(default=65536, metadata=_rng(512, 65536))
    #: TCP connections open at once, in all and per source host; more are refused with a /fail.
    max_connections: int = field(default=128, metadata=_rng(1, 65536))
    max_connections_per_host: int = field(default=16, metadata=_rng(1, 65536))
    #: Seconds a TCP connection may send nothing before it is closed.
    tcp_idle_timeout: float = field(default=600.0, metadata=_rng(1.0, 604800.0))
    #: Seconds a TCP frame may stay unfinished before the connection gets a /fail and is closed.
    tcp_frame_timeout: float = field(default=10.0, metadata=_rng(0.1, 3600.0))
    #: UDP datagrams per second one source (address and port) may send, bursts of udp_burst
    #: beyond; the rest are dropped before decoding, so a flood cannot starve other clients. 0: no limit.
    udp_rate_limit: float = field(default=0.0, metadata=_rng(0.0, 10_000_000.0))
    #: Datagrams one source may send at once above udp_rate_limit before the limit applies.
    udp_burst: int = field(default=2000, metadata=_rng(1, 10_000_000))
    zeroconf: bool = True
    #: Serve OSCQuery (the namespace as JSON over HTTP, advertised as _oscjson._tcp) on http_port.
    oscquery: bool = True
    #: The OSCQuery HTTP port (TCP); 0: any free port (the ready line names it).
    http_port: int = field(default=57131, metadata=_rng(0, 65535))
    #: Instance name; ``{hostname}`` is replaced by this machine's name.
    name: str = "Timbrespace on {hostname}"
    #: ``all`` or a list of interface addresses to advertise on.
    interfaces: list[str] | Literal["all"] = "all"

    def instance_name(self) -> str:
        """The zeroconf instance name with ``{hostname}`` filled in."""
        return self.name.replace("{hostname}", socket.gethostname())


@dataclass
class AudioConfig:
    """The audio process."""

    backend: Literal["auto", "jack", "portaudio", "null"] = "auto"
    sample_rate: int = field(default=48000, metadata=_rng(8000, 192000))
    block_size: int = field(default=256, metadata=_rng(16, 4096))
    channels: int = field(default=2, metadata=_rng(1, 2))
    polyphony: int = field(default=8, metadata=_rng(1, 64))
    #: The master bus's limiter: the sum of every layer and the input is held under this peak
    #: (dBFS); below it the bus changes nothing (see audio/master.py).
    ceiling_db: float = field(default=-1.0, metadata=_rng(-60.0, -0.1))
    #: Python's thread switch interval inside the audio process (seconds); see docs/architecture.md.
    switch_interval: float = field(default=0.001, metadata=_rng(0.0001, 0.1))
    #: SCHED_FIFO priority of the audio process (0: the normal scheduler); refused quietly
    #: without the right (root, or rtprio in limits.conf).
    realtime_priority: int = field(default=70, metadata=_rng(0, 99))


@dataclass
class InferenceConfig:
    """Where the models run."""

    device: Literal["auto", "cpu", "cuda"] = "auto"
    #: torch intra-op threads in the control process; small so the audio process keeps a core.
    threads: int = field(default=1, metadata=_rng(1, 64))


@dataclass
class PatchConfig:
    """The amSynth patch engine."""

    banks: list[Path] = field(default_factory=lambda: [Path("/usr/share/amsynth/banks")])
    user_bank: Path = Path("var/user.amSynth.bank")
    model: Path = Path("models/patch-vae/patch-vae.pt")
    initial_preset: str | int = ""
    initial_latent: list[float] = field(default_factory=lambda: [0.5, 0.5])


@dataclass
class TimbreConfig:
    """The timbre engine (pitch/timbre GMVAE, harmonic-plus-noise voices)."""

    #: Run it when its model is there; a server without it still serves the patch engine.
    enabled: bool = True
    model: Path = Path("models/timbre-gmvae/timbre-gmvae.pt")
    #: Instruments at the /latent map's corners (0,0), (1,0), (0,1), (1,1): index or name.
    corners: list[str | int] = field(default_factory=lambda: ["flute", "trumpet", "cello", "piano"])
    #: What /latent moves over at start: the corners' blend, or the learned map beside the model
    #: (timbre-map.pt; `timbrespace train timbre-map`). A saved state's choice wins.
    map: Literal["corners", "learned"] = "corners"
    polyphony: int = field(default=16, metadata=_rng(1, 64))
    #: Release time of a note, seconds (the model decodes held notes).
    release: float = field(default=0.3, metadata=_rng(0.005, 10.0))
    #: Output gain of the timbre voices.
    gain: float = field(default=1.0, metadata=_rng(0.0, 8.0))


#: Layers a server may run: every layer has every engine's voices, so each costs memory and
#: (while it sounds) CPU in the audio process.
MAX_LAYERS = 16


@dataclass
class InputConfig:
    """The live input (docs/live-transfer.md): a WAV file played as the input, followed by a voice."""

    #: A WAV file played as the input (resampled to audio.sample_rate); empty: no input.
    #: `timbrespace serve --input FILE.wav` sets it.
    file: str = ""
    #: Play the file over and over (`--input-loop`); else once per `/input 1`.
    loop: bool = False
    #: The audio device's first input channel as the input instead of a file (`--input-device`):
    #: JACK's capture port timbrespace:input_1 or PortAudio's default input; silent on the null backend.
    device: bool = False
    #: The instrument whose timbre the voice takes at start (`/input/target`): index or name.
    target: str | int = "trumpet"
    #: Below this RMS level (dBFS) the voice is silent (`/input/gate`).
    gate: float = field(default=-50.0, metadata=_rng(-120.0, 0.0))
    #: The pitch tracker's window in ms (rounded to a power-of-two number of samples): most of
    #: the latency to a new pitch; its lowest pitch has two periods in it (21.3 ms: 95 Hz; 10.7 ms: 190 Hz).
    window: float = field(default=21.3, metadata=_rng(2.0, 100.0))
    #: Trackers staggered across the window (each a pyo Yin, whose hop is its window): the pitch is
    #: updated window/trackers apart (at most once per audio block), at their CPU cost.
    trackers: int = field(default=4, metadata=_rng(1, 16))
    #: At a new note: sound (the voice sounds at once, at the pitch last tracked until the trackers
    #: have the new one) or pitch (it stays silent until two estimates of the note agree: later, never off pitch).
    onset: Literal["sound", "pitch"] = "sound"
    #: The short trackers' window in ms (0: none; rounded to a power-of-two number of samples, so
    #: 13.4 ms is 512 samples as 10.7 is), beside the long ones: a new note high enough for two of
    #: its periods to fit (10.7 ms: from 213 Hz) takes their pitch until a long window after its
    #: onset lands, which for most notes is sooner (docs/live-transfer.md).
    onset_window: float = field(default=10.7, metadata=_rng(0.0, 100.0))
    #: The low notes' onset trackers' window in ms (0: none; an even number of samples, not rounded to a
    #: power of two), beside the short ones: a new note with two periods in it (16 ms: from 142 Hz)
    #: takes their pitch, as the short trackers' for higher notes.
    low_onset_window: float = field(default=16.0, metadata=_rng(0.0, 100.0))
    #: The layer the input belongs to (an index of `layers`): its voice is placed in the mix by that
    #: layer's gain and pan, its addresses are that layer's (`/layer/N/input ...`), its settings are
    #: fed back to that layer's subscribers and kept in the layer's saved state.
    layer: int = field(default=0, metadata=_rng(0, MAX_LAYERS - 1))


@dataclass
class StateConfig:
    """Server state persisted across restarts."""

    path: Path = Path("var/state.json")
    persist: bool = True
    #: Seconds between checks for a changed state; a change is on disk within about this time
    #: (and at exit), so a crash or ``kill -9`` loses at most its last moments.
    save_interval: float = field(default=1.0, metadata=_rng(0.05, 3600.0))


@dataclass
class DataConfig:
    """Training data for the timbre engine (``timbrespace data``)."""

    #: The General MIDI SoundFont the notes are rendered from (Debian: fluid-soundfont-gm).
    soundfont: Path = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
    #: Where ``timbrespace data soundfont`` writes its WAVs and manifest.json.
    data_dir: Path = Path("var/data/soundfont")


@dataclass
class SessionsConfig:
    """Many people on one server: who may play, how much, and what they see (docs/sessions.md)."""

    #: Members at once (clients that said /hello, hold a note or subscribed); more are refused with a /fail.
    max_clients: int = field(default=64, metadata=_rng(1, 4096))
    #: Seconds of silence after which a UDP member leaves (its notes released); 0: never.
    client_timeout: float = field(default=60.0, metadata=_rng(0.0, 604800.0))
    #: Feedback messages per second per subscriber and key at most (changes in between are coalesced).
    feedback_rate: float = field(default=30.0, metadata=_rng(1.0, 1000.0))
    #: Other players' cursors (/cursor) per second per subscriber at most, all cursors together: with
    #: many players each cursor is sent less often than feedback_rate (its newest position still arrives).
    cursor_budget: float = field(default=300.0, metadata=_rng(1.0, 1_000_000.0))
    #: Networks whose packets are taken; others are dropped before decoding, and counted.
    allow: list[str] = field(default_factory=lambda: [
        "127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16",
        "fc00::/7", "fe80::/10"])
    #: Networks whose clients may use admin-only addresses (/panic all) and are not rate-limited.
    admin: list[str] = field(default_factory=lambda: ["127.0.0.0/8", "::1/128"])
    #: Messages per second one non-admin client may send, bursts of rate_burst beyond; the rest are
    #: dropped and answered with one /fail a second. 0: no limit.
    rate_limit: float = field(default=2000.0, metadata=_rng(0.0, 10_000_000.0))
    rate_burst: int = field(default=4000, metadata=_rng(1, 10_000_000))


@dataclass
class LayerConfig:
    """One layer: a whole instrument that clients choose with /layer N (docs/sessions.md)."""

    #: When several clients move the map point at once: last (the latest move wins), lock (the first
    #: mover holds it until it stops moving for `hold` seconds; the others get /fail naming it) or
    #: blend (the mean of the latent points of everyone who moved within `hold` seconds).
    collision: Literal["last", "lock", "blend"] = "last"
    #: Seconds after its last move that a client still holds (lock) or counts in (blend) the point.
    hold: float = field(default=1.0, metadata=_rng(*HOLD_RANGE))
    #: Its level in the mix (1: as loud as a server with one layer).
    gain: float = field(default=1.0, metadata=_rng(*GAIN_RANGE))
    #: Where it stands: -1 left, 0 centre, 1 right (equal power).
    pan: float = field(default=0.0, metadata=_rng(*PAN_RANGE))


@dataclass
class Config:
    """The whole configuration."""

    network: NetworkConfig = field(default_factory=NetworkConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    patch: PatchConfig = field(default_factory=PatchConfig)
    state: StateConfig = field(default_factory=StateConfig)
    data: DataConfig = field(default_factory=DataConfig)
    timbre: TimbreConfig = field(default_factory=TimbreConfig)
    input: InputConfig = field(default_factory=InputConfig)
    sessions: SessionsConfig = field(default_factory=SessionsConfig)
    #: The layers, by index: clients play layer 0 together until they send /layer N.
    layers: list[LayerConfig] = field(default_factory=lambda: [LayerConfig() for _ in range(4)])
    #: The engine heard at start (a saved state's choice wins when state.persist is on).
    engine: Literal["patch", "timbre"] = "patch"
    log_level: Literal["debug", "info", "warning", "error"] = "info"


def load(path: str | os.PathLike[str] | None = None) -> Config:
    """Load and validate a YAML config; None loads ``config/default.yaml`` (or built-in defaults)."""
    p = Path(path) if path is not None else DEFAULT_CONFIG
    if path is None and not p.exists():
        return Config()
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read config {p}: {e.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: not valid YAML: {e}") from None
    if data is None:
        data = {}
    cfg = from_dict(data, source=str(p))
    # The default config describes the repository's own layout; any other config file's relative
    # paths are beside it, wherever it is kept. Keys it does not set keep the repository's defaults.
    own = p.resolve() == DEFAULT_CONFIG.resolve()
    _resolve_paths(cfg, REPO_ROOT if own else p.resolve().parent, _given(data))
    return cfg


def _given(data: object) -> set[str]:
    """Dotted keys present in a config's plain data (``patch.user_bank``...)."""
    if not isinstance(data, dict):
        return set()
    return {f"{section}.{key}" for section, sub in data.items() if isinstance(sub, dict) for key in sub}


def from_dict(data: object, *, source: str = "config") -> Config:
    """Build a Config from plain data, validating every key."""
    out = _build(Config, data, "", source)
    assert isinstance(out, Config)
    _check_semantics(out, source)
    return out


def _build(cls: type[Any], data: object, prefix: str, source: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: {prefix.rstrip('.') or 'top level'} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        key = f"{prefix}{unknown[0]}"
        raise ConfigError(f"{source}: unknown key {key!r}; allowed here: {', '.join(fields)}")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        key = f"{prefix}{name}"
        f = fields[name]
        kwargs[name] = _coerce(hints[name], value, key, source, f.metadata)
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, key: str, source: str, meta: typing.Mapping[str, Any]) -> Any:
    origin = typing.get_origin(tp)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _build(tp, value, key + ".", source)
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            hint = " (YAML reads a bare null as nothing: quote it, 'null')" if value is None else ""
            raise ConfigError(
                f"{source}: {key} = {value!r} is not allowed; expected one of {list(allowed)}{hint}"
            )
        return value
    if origin in (typing.Union, types.UnionType):
        errors = []
        for option in typing.get_args(tp):
            try:
                return _coerce(option, value, key, source, meta)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(" / ".join(errors))
    if origin is list:
        (item,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(f"{source}: {key} = {value!r} must be a list")
        return [_coerce(item, v, f"{key}[{i}]", source, {}) for i, v in enumerate(value)]
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: {key} = {value!r} must be true or false")
        return value
    if tp in (int, float):
        ok = isinstance(value, int) and not isinstance(value, bool)
        ok = ok or (tp is float and isinstance(value, float))
        if not ok:
            raise ConfigError(f"{source}: {key} = {value!r} must be {'an integer' if tp is int else 'a number'}")
        lo, hi = meta.get("range", (None, None))
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise ConfigError(f"{source}: {key} = {value!r} is out of range [{lo}, {hi}]")
        return tp(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{source}: {key} = {value!r} must be a string")
        return value
    if tp is Path:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{source}: {key} = {value!r} must be a non-empty path string")
        return Path(os.path.expanduser(value))
    raise ConfigError(f"{source}: {key}: unsupported type {tp}")  # pragma: no cover - a schema bug


def _check_semantics(cfg: Config, source: str) -> None:
    net = cfg.network
    if net.max_connections_per_host > net.max_connections:
        raise ConfigError(f"{source}: network.max_connections_per_host = {net.max_connections_per_host} "
                          f"must not exceed network.max_connections = {net.max_connections}")
    if net.oscquery and net.http_port and net.http_port == net.port:
        raise ConfigError(f"{source}: network.http_port = {net.http_port} is network.port's number; OSC takes TCP "
                          "on that port, so OSCQuery needs another (or 0: any free port)")
    bs = cfg.audio.block_size
    if bs & (bs - 1):
        raise ConfigError(f"{source}: audio.block_size = {bs} must be a power of two (16 to 4096)")
    if not 1 <= len(cfg.layers) <= MAX_LAYERS:
        raise ConfigError(f"{source}: layers has {len(cfg.layers)} entries; expected 1 to {MAX_LAYERS} "
                          "(one mapping per layer, e.g. `- {{collision: last}}`)")
    if cfg.input.layer >= len(cfg.layers):
        raise ConfigError(f"{source}: input.layer = {cfg.input.layer} is not a layer; layers has {len(cfg.layers)} "
                          f"entries (0 to {len(cfg.layers) - 1})")
    if cfg.input.device and cfg.input.file:
        raise ConfigError(f"{source}: input.device is true and input.file = {cfg.input.file!r}: the input is one "
                          "or the other")
    sr, inp = cfg.audio.sample_rate, cfg.input
    if inp.onset_window and window_for(inp.onset_window, sr) >= window_for(inp.window, sr):
        raise ConfigError(f"{source}: input.onset_window = {inp.onset_window:g} ms must be shorter than input.window = "
                          f"{inp.window:g} ms (both rounded to a power-of-two number of samples), or 0: no short "
                          "trackers")
    if inp.low_onset_window and even_window(inp.low_onset_window, sr) >= window_for(inp.window, sr):
        raise ConfigError(f"{source}: input.low_onset_window = {inp.low_onset_window:g} ms must be shorter than "
                          f"input.window = {inp.window:g} ms, or 0: no low onset trackers")
    if len(cfg.timbre.corners) != 4:
        raise ConfigError(f"{source}: timbre.corners = {cfg.timbre.corners} must name four instruments")
    from timbrespace.session.networks import NetworkError, Networks

    for key in ("allow", "admin"):
        try:
            Networks(getattr(cfg.sessions, key))
        except NetworkError as e:
            raise ConfigError(f"{source}: sessions.{key}: {e}") from None
    lat = cfg.patch.initial_latent
    if len(lat) != 2 or not all(0.0 <= v <= 1.0 for v in lat):
        raise ConfigError(f"{source}: patch.initial_latent = {lat} must be two numbers in [0, 1]")


def _resolve_paths(cfg: Config, base: Path, given: set[str] | None = None) -> None:
    """Make relative paths absolute: those in ``given`` against ``base``, the others against the repo."""

    def fix(key: str, p: Path) -> Path:
        if p.is_absolute():
            return p
        return (base if given is None or key in given else REPO_ROOT) / p

    cfg.patch.banks = [fix("patch.banks", b) for b in cfg.patch.banks]
    cfg.patch.user_bank = fix("patch.user_bank", cfg.patch.user_bank)
    cfg.patch.model = fix("patch.model", cfg.patch.model)
    cfg.state.path = fix("state.path", cfg.state.path)
    cfg.data.soundfont = fix("data.soundfont", cfg.data.soundfont)
    cfg.data.data_dir = fix("data.data_dir", cfg.data.data_dir)
    cfg.timbre.model = fix("timbre.model", cfg.timbre.model)
    if cfg.input.file:
        cfg.input.file = str(fix("input.file", Path(os.path.expanduser(cfg.input.file))))


def resolve_default_paths(cfg: Config) -> Config:
    """Resolve a config's relative paths against the repository root (for built-in defaults)."""
    _resolve_paths(cfg, REPO_ROOT)
    return cfg
