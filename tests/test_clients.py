"""Example clients run for real against a real server."""

from __future__ import annotations

import re
import subprocess
import sys
import time
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


def test_python_wander_joins_by_name_and_leaves(server: ServerProc) -> None:
    # Issue 20: with --name it says /hello first (the others see its point as a cursor) and /bye last.
    watcher = server.client()
    watcher.request("/hello", "watcher")
    watcher.send("/notify", 1)
    assert watcher.expect("/done").params[0] == "/notify"
    wander = subprocess.Popen(
        [sys.executable, str(ROOT / "clients/python/wander.py"), "--host", server.host, "--port", str(server.port),
         "--seconds", "1", "--tempo", "240", "--name", "wanderer"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    # Read while it plays: on the patch engine every move feeds back the whole patch, which would
    # overflow a socket nobody reads.
    seen: dict[str, int] = {}
    deadline = time.monotonic() + 30
    try:
        while "left" not in seen:
            try:
                m = watcher.recv(max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                raise AssertionError(f"saw only {seen}") from None
            if m.address == "/clients" and m.params[2] == "wanderer":
                seen[m.params[0]] = m.params[1]
            elif m.address == "/cursor" and m.params[1] == "wanderer":
                seen["cursor"] = m.params[0]
        out, err = wander.communicate(timeout=30)
    finally:
        if wander.poll() is None:
            wander.kill()
            wander.wait()
    assert wander.returncode == 0, err
    joined = re.search(r"joined as 'wanderer' \(id (\d+)\)", out)
    assert joined and f"left the session (id {joined[1]})" in out, out
    assert seen == {"joined": int(joined[1]), "cursor": int(joined[1]), "left": int(joined[1])}
    watcher.send("/bye")
    watcher.close()
