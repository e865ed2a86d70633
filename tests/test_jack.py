"""With a JACK server running (jackd's dummy driver: no sound card), auto picks JACK and plays."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from timbrespace.audio.host import jack_running

from conftest import start_server

pytestmark = pytest.mark.skipif(shutil.which("jackd") is None, reason="jackd2 is not installed")


@pytest.fixture()
def jackd() -> Iterator[None]:
    if jack_running():
        yield
        return
    proc = subprocess.Popen(["jackd", "--no-realtime", "-d", "dummy", "-r", "48000", "-p", "256"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if jack_running():
                break
            time.sleep(0.1)
        assert jack_running(), "jackd did not start"
        yield
    finally:
        proc.terminate()
        proc.wait(10)


def test_auto_uses_a_running_jack_server(jackd: None, tmp_path: Path) -> None:
    s = start_server(tmp_path, audio={"backend": "auto"})
    try:
        c = s.client()
        st = c.status()
        assert st["audio"] == "jack" and st["sample_rate"] == 48000
        c.send("/note", 60, 100)
        c.sync(1)
        c.status_until(lambda st: st["voices"] == 1)
        # No xruns while a note plays. This shared VM itself now and then wakes a real-time thread
        # more than a block late (bench's "host timer" row: ~9 times a minute), so a lone xrun can be
        # the host's; ours would recur. Pass on the first of five 1 s windows without any.
        counts = []
        for _ in range(5):
            before = c.status()["late_blocks"]
            time.sleep(1.0)
            counts.append(c.status()["late_blocks"] - before)
            if counts[-1] == 0:
                break
        assert counts[-1] == 0, f"xruns in every 1 s window: {counts}"
        c.send("/note", 60, 0)
        c.close()
    finally:
        assert s.stop() == 0
