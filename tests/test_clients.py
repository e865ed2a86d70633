"""Example clients run for real against a real server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ServerProc

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("engine", [[], ["--engine", "timbre", "--corners", "oboe", "trumpet", "cello", "bassoon"],
                                    ["--engine", "patch"]], ids=["as-is", "timbre", "patch"])
def test_python_wander_plays_the_server(server: ServerProc, engine: list[str]) -> None:
    c = server.client()
    before = c.status()
    out = subprocess.run(
        [sys.executable, str(ROOT / "clients/python/wander.py"), "--host", server.host, "--port", str(server.port),
         "--seconds", "2", "--tempo", "240", *engine],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    # The server fixture starts on the patch engine; the last run puts it back.
    assert f"engine={engine[1] if engine else 'patch'}" in out.stdout
    after = c.status()
    # 20 map moves a beat at 4 beats a second for 2 s, plus its notes, and nothing rejected.
    assert after["received"] - before["received"] >= 150
    assert after["rejected"] == before["rejected"]
    c.close()
