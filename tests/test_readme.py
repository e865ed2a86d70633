"""What a newcomer copies from the README does what the README says (issue 19)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", (ROOT / "README.md").read_text(), re.S)


def test_supercollider_snippet_releases_the_note_after_the_sweep() -> None:
    # Run as one block, a release after `fork { ... }` is sent at once, before the sweep moves.
    (block,) = [b for b in _blocks("supercollider") if "/latent" in b]
    assert block.lstrip().startswith("(") and block.rstrip().endswith(")"), "one block, evaluated at once"
    start = block.index("fork {")
    depth, end = 0, start
    for i, ch in enumerate(block[start:], start):
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth == 0 and ch == "}":
            end = i
            break
    inside = block[start:end]
    assert '"/note", 60, 0' in inside and inside.index('"/note", 60, 0') > inside.index(".wait"), block
    assert '"/note", 60, 0' not in block[end:]


def test_recordings_in_the_repository_root_are_ignored() -> None:
    # `make run ARGS="--record take.wav"` writes take.wav beside the README.
    for name in ("take.wav", "render.wav"):
        assert subprocess.run(["git", "check-ignore", "-q", name], cwd=ROOT).returncode == 0, name
    # ... but not the WAVs kept on purpose deeper in the tree.
    assert subprocess.run(["git", "check-ignore", "-q", "docs/example.wav"], cwd=ROOT).returncode == 1
