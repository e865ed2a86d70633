"""With a JACK server running (jackd's dummy driver: no sound card), auto picks JACK and plays."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import start_jackd, start_server

pytestmark = pytest.mark.skipif(shutil.which("jackd") is None, reason="jackd2 is not installed")


def test_auto_uses_a_running_jack_server(jack_server: None, tmp_path: Path) -> None:
    s = start_server(tmp_path, audio={"backend": "auto"})
    try:
        ready = next(line for line in s.lines if "ready:" in line)
        assert "(audio jack 48000 Hz/" in ready, "\n".join(s.lines)  # what auto chose
        c = s.client()
        # JACK's first cycles may stall on a loaded machine; the server then plays on the null
        # backend and moves back to JACK by itself (the fallback test covers that path).
        st = c.status_until(lambda st: st["audio"] == "jack", timeout=20.0)
        assert st["sample_rate"] == 48000, "\n".join(s.lines)
        c.send("/note", 60, 100)
        c.sync(1)
        c.status_until(lambda st: st["voices"] == 1)
        # The note is rendered through JACK's cycles: the meter (peak before the limiter) shows it.
        # Whether those cycles are all on time is the bench's claim (late blocks on a quiet machine):
        # here another worker's test shares the two cores, and an xrun is its doing as often as ours.
        st = c.status_until(lambda st: st["level_db"] > -40.0, timeout=10.0)
        assert st["audio"] == "jack" and st["late_blocks"] >= 0, st
        c.send("/note", 60, 0)
        c.sync(2)
        c.status_until(lambda st: st["voices"] == 0 and st["level_db"] < -90.0, timeout=10.0)
        c.close()
    finally:
        assert s.stop() == 0


def test_jack_stopping_under_a_running_server_falls_back_to_null_and_returns(jack_name: str, tmp_path: Path) -> None:
    """Killing jackd under the server: /status keeps answering and says so, the held note is gone
    after the restart, the audio moves back to JACK when it returns, and SIGTERM still exits 0."""
    jack = start_jackd()
    s = None
    try:
        s = start_server(tmp_path, audio={"backend": "auto"})
        c = s.client(timeout=2.0)  # every /status must be answered within this, fault or not
        assert c.status()["audio"] == "jack"
        c.send("/note", 60, 100)
        c.sync(1)
        c.status_until(lambda st: st["voices"] == 1)
        jack.kill()
        jack.wait(10)
        seen = set()

        def fell_back(st: dict[str, object]) -> bool:
            seen.add(st["audio"])
            return st["audio"] == "null"

        st = c.status_until(fell_back, timeout=20.0)
        # Before the fix the audio process sat in a dead JACK client: "jack" and a growing stall forever.
        assert st["audio_stall_s"] < 1.0
        c.status_until(lambda st: st["voices"] == 0 and st["audio_stall_s"] == 0.0)
        assert any("the JACK server stopped" in line for line in s.lines), "\n".join(s.lines[-20:])
        # The restarted process renders: a new note sounds and its note-off releases it.
        c.send("/note", 64, 100)
        c.sync(2)
        c.status_until(lambda st: st["voices"] == 1)
        c.send("/note", 64, 0)
        c.send("/note", 60, 0)  # the note held at the fault: already released, harmless
        c.sync(3)
        c.status_until(lambda st: st["voices"] == 0)
        jack = start_jackd()
        c.status_until(lambda st: st["audio"] == "jack" and st["audio_stall_s"] == 0.0, timeout=30.0)
        c.close()
        code = s.stop(timeout=20.0)
        assert code == 0, "\n".join(s.lines[-30:])
    finally:
        if s is not None:
            s.stop()
        jack.terminate()
        jack.wait(10)
