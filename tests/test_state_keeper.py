"""The live server's state kept on disk: written when it changed, never half, failures retried."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from timbrespace.state import load_state
from timbrespace.state_keeper import StateKeeper


def test_writes_on_change_only_and_retries_after_a_failure(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the state's folder should be")
    current: dict[str, Any] = {"patch": {"xy": [0.5, 0.5]}}

    async def run() -> tuple[int, int, int, int]:
        loop = asyncio.get_running_loop()
        keeper = StateKeeper(loop, blocker / "state.json", lambda: [{"engines": current, "active": "patch"}], 0.01)
        keeper.start()
        await asyncio.sleep(0.2)
        failed = keeper.failures  # the folder cannot be made: reported, nothing raised, retried
        keeper.path = tmp_path / "state.json"
        for _ in range(200):
            await asyncio.sleep(0.01)
            if keeper.writes:
                break
        first = keeper.writes
        await asyncio.sleep(0.2)  # nothing changed: nothing written
        unchanged = keeper.writes
        current["patch"] = {"xy": [0.25, 0.75]}
        for _ in range(200):
            await asyncio.sleep(0.01)
            if keeper.writes > unchanged:
                break
        await keeper.close()
        return failed, first, unchanged, keeper.writes

    failed, first, unchanged, last = asyncio.run(run())
    assert failed >= 1 and first == 1 and unchanged == 1 and last == 2
    assert load_state(tmp_path / "state.json").engines == {"patch": {"xy": [0.25, 0.75]}}
    assert json.loads((tmp_path / "state.json").read_text())["layers"][0]["active"] == "patch"
    assert not list(tmp_path.glob(".state.json.*"))
