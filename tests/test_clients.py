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
    # As-is plays whatever engine the server is on; the others select theirs.
    assert f"engine={engine[1] if engine else before['engine']}" in out.stdout
    after = c.status()
    # 20 map moves a beat at 4 beats a second for 2 s, plus its notes, and nothing rejected.
    assert after["received"] - before["received"] >= 150
    assert after["rejected"] == before["rejected"]
    c.close()


def test_python_wander_reports_what_the_server_refuses(server: ServerProc) -> None:
    # Issue 19: a misspelt corner was refused by the server while wander.py played on and exited 0.
    out = subprocess.run(
        [sys.executable, str(ROOT / "clients/python/wander.py"), "--host", server.host, "--port", str(server.port),
         "--seconds", "2", "--engine", "timbre", "--corners", "oboe", "trumpett", "cello", "bassoon"],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 2, out.stdout + out.stderr
    assert "wander.py: the server refused /corners: /corners: unknown instrument 'trumpett'" in out.stderr, out.stderr
    assert "not playing" in out.stderr and "engine=" not in out.stdout
