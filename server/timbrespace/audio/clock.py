"""How the audio process counts its late blocks: the null backend's real-time clock, JACK's xruns.

See :mod:`timbrespace.audio.host` for the backends and docs/architecture.md ("Timing").
"""

from __future__ import annotations

import time
from typing import Any

from timbrespace.link.stats import LATE, MAX_BLOCK_MS, AudioStats


def jack_xrun_monitor(stats: AudioStats) -> Any:
    """A second JACK client whose only job is to count the server's xruns as late blocks.

    JACK knows when a cycle missed its deadline; timing callbacks from inside the cycle cannot
    tell our lateness from the driver's jitter (jackd's dummy driver wanders by more than half a
    period without any xrun).
    """
    import jack

    client = jack.Client("timbrespace-xruns", no_start_server=True)

    def on_xrun(delay_us: float) -> None:
        stats.array[LATE] += 1

    client.set_xrun_callback(on_xrun)
    client.activate()
    return client


def run_clocked(server: Any, player: Any, stats: AudioStats, period: float) -> None:
    """Drive pyo's manual backend in real time: block k is due at t0 + (k+1)*period."""
    a = stats.array
    t0 = time.monotonic()
    k = 0
    while not player.quit:
        start = t0 + k * period
        delay = start - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        began = time.monotonic()
        server.process()
        done = time.monotonic()
        a[MAX_BLOCK_MS] = max(a[MAX_BLOCK_MS], (done - began) * 1000.0)
        if done > t0 + (k + 1) * period:
            a[LATE] += 1
            behind = done - (t0 + (k + 1) * period)
            if behind > 4 * period:
                # Far behind (suspended, debugger): restart the clock rather than burst to catch up,
                # and count the blocks that were never rendered on time as late too.
                a[LATE] += int(behind / period)
                t0 = done - (k + 1) * period
        k += 1
