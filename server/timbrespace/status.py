"""What ``/status`` reports: fixed facts, message counters and the audio side's live numbers.

``/status`` is what monitors poll hardest (the bench sends tens of thousands a second), so its
reply is a template: the fixed facts are encoded once (again when they change: the engine heard,
the audio backend), the live numbers per request.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from timbrespace.link.stats import LAT_COUNT, LATE, LEVEL, VOICES, AudioStats
from timbrespace.protocol.encode import MessageTemplate


@dataclass
class ServerInfo:
    """Facts /status reports that do not change while serving."""

    audio: str = "offline"
    sample_rate: int = 48000
    block_size: int = 256
    device: str = "cpu"


@dataclass
class Counters:
    """Message counters reported by /status."""

    received: int = 0
    rejected: int = 0
    malformed: int = 0
    #: Replies (/fail, /synced, *.reply) received: never answered, or two servers answer each other forever.
    ignored: int = 0
    #: Messages over a client's rate limit (answered with one /fail a second at most).
    limited: int = 0


StatusValues = tuple[int, int, int, int, int, float, float, float, float, float, float]
#: The output level (dBFS) reported for silence (a peak under -120 dBFS).
SILENT_DB = -120.0
#: The live input's level (dBFS) and pitch (Hz) when the server has none.
NO_INPUT = (-120.0, 0.0)


class StatusReport:
    """Builds /status.reply from the server's info, counters and audio stats."""

    def __init__(self, info: ServerInfo, counters: Counters, stats: AudioStats | None,
                 clients: Callable[[float], int]) -> None:
        self.info = info
        self.counters = counters
        self.stats = stats
        self.clients = clients
        #: The live input's level and pitch (``InputFollower.status``); None: the server has no input.
        self.input: Callable[[], tuple[float, float]] | None = None
        self.template = self._template("patch")

    def engine_changed(self, engine: str) -> None:
        """The engine heard, or the audio backend in ``info``, changed: encode the fixed facts again."""
        self.template = self._template(engine)

    def _template(self, engine: str) -> MessageTemplate:
        i = self.info
        return MessageTemplate("/status.reply", (
            "clients", int, "voices", int, "engine", engine, "audio", i.audio,
            "sample_rate", i.sample_rate, "block_size", i.block_size, "device", i.device,
            "received", int, "rejected", int, "late_blocks", int,
            "latency_p50_ms", float, "latency_p99_ms", float, "audio_stall_s", float, "level_db", float,
            "input_level_db", float, "input_f0", float,
        ))

    def values(self, now: float) -> StatusValues:
        """The live numbers, in reply order."""
        clients = self.clients(now)
        c = self.counters
        stats = self.stats
        level, f0 = self.input() if self.input is not None else NO_INPUT
        if stats is None:
            return clients, 0, c.received, c.rejected, 0, 0.0, 0.0, 0.0, SILENT_DB, level, f0
        v = stats.values
        p50, p99 = stats.percentiles(v[LAT_COUNT])
        out_db = 20.0 * math.log10(v[LEVEL]) if v[LEVEL] > 1e-6 else SILENT_DB
        return (clients, int(v[VOICES]), c.received, c.rejected, int(v[LATE]), p50, p99, stats.stall_s(now),
                out_db, level, f0)

    def as_dict(self, now: float) -> dict[str, Any]:
        """What /status reports, as a dict (keys in reply order)."""
        args = self.template.args(*self.values(now))
        return {str(k): v for k, v in zip(args[::2], args[1::2])}

    def encode(self, now: float) -> bytes:
        """The encoded /status.reply."""
        return self.template.encode(*self.values(now))
