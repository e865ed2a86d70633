"""Late blocks while the live input plays beside a full load of notes (issue 16's cost figure).

A live server (null backend: the audio process's own clock) plays the bench's sawtooth phrase as its
input, looped, on layer 0, with 8 patch voices held on layer 0 and 16 timbre notes held on layer 1:
each phase runs the same notes for the same time, first with the input off, then on. Late blocks are
the audio process's own count (``/status``), judged against the host-timer row of the same bench
run (a bare sleep loop at the audio's period: each of its late wake-ups is a late block whatever
the server does), scaled to the phase's length.
"""

from __future__ import annotations

import socket
import tempfile
import time
from pathlib import Path
from typing import Any

from timbrespace.bench_live import live_server, status
from timbrespace.config import Config

#: The load beside the input: keys held on each engine (the default polyphonies: 8 and 16).
PATCH_KEYS = (48, 52, 55, 60, 64, 67, 72, 76)
TIMBRE_KEYS = tuple(range(55, 79, 3)) + tuple(range(56, 80, 3))


def _send(sock: socket.socket, address: str, *args: Any) -> None:
    from timbrespace.protocol.encode import encode_message

    sock.send(encode_message(address, args))


def _phase(host: str, port: int, seconds: float, input_on: bool) -> dict[str, Any]:
    """Hold every key, the input on or off, for ``seconds``: late blocks and voices sounding."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect((host, port))
        _send(s, "/layer/1/engine", "timbre")
        _send(s, "/input", int(input_on))
        for k in PATCH_KEYS:
            _send(s, "/layer/0/note", k, 90)
        for k in TIMBRE_KEYS:
            _send(s, "/layer/1/note", k, 90)
        time.sleep(1.0)  # every voice sounding, the input's first notes tracked
        before = status(host, port)
        time.sleep(seconds)
        after = status(host, port)
        for k in PATCH_KEYS:
            _send(s, "/layer/0/note", k, 0)
        for k in TIMBRE_KEYS:
            _send(s, "/layer/1/note", k, 0)
        _send(s, "/input", 0)
        time.sleep(1.0)  # released before the next phase
    return {"seconds": seconds, "late_blocks": int(after["late_blocks"]) - int(before["late_blocks"]),
            "voices": int(after["voices"]), "input_on": input_on, "input_level_db": float(after["input_level_db"])}


def bench_input_load(cfg: Config, quick: bool, host_timer: dict[str, Any] | None) -> dict[str, Any] | None:
    """Both phases on one server; None when the timbre model is not there."""
    if not cfg.timbre.enabled or not cfg.timbre.model.exists():
        return None
    import numpy as np
    import soundfile

    from timbrespace.bench_input import SR, phrase
    seconds = 5.0 if quick else 20.0
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "phrase.wav"
        _, x = phrase()
        soundfile.write(str(wav), np.asarray(x, dtype=np.float64), SR, subtype="FLOAT")
        extra = {"input": {"file": str(wav), "loop": True, "target": "trumpet"},
                 "timbre": {"polyphony": len(TIMBRE_KEYS)}, "audio": {
                     "backend": "null", "sample_rate": cfg.audio.sample_rate, "block_size": cfg.audio.block_size,
                     "polyphony": len(PATCH_KEYS)}}
        with live_server(cfg, extra) as (host, port, _pid):
            phases = [_phase(host, port, seconds, on) for on in (False, True)]
    out: dict[str, Any] = {"phases": phases, "patch_voices": len(PATCH_KEYS), "timbre_notes": len(TIMBRE_KEYS)}
    if host_timer:
        # The host's own late wake-ups, as many as the phase's length would see at the row's rate.
        rate = host_timer["over_one_block"] / host_timer["seconds"]
        out["floor"] = rate * seconds
    return out


def markdown_rows(r: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The figure's rows for the live-input table."""
    off, on = r["phases"]
    floor = f"; the host timer's rate gives {r['floor']:.1f} in as long" if "floor" in r else ""
    return [(f"late blocks beside {r['patch_voices']} patch voices and {r['timbre_notes']} timbre notes, "
             "input off / on", f"{off['late_blocks']} / {on['late_blocks']} in {on['seconds']:g} s each",
             f"live server, null backend; {off['voices']} / {on['voices']} voices sounding, the input at "
             f"{on['input_level_db']:.0f} dBFS while on{floor}")]
