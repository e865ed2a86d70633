"""docs/config.md is generated from the config declaration and kept fresh (like docs/protocol.md)."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import pytest

from timbrespace import config, config_docs

ROOT = Path(__file__).resolve().parents[1]


def test_config_md_is_generated_from_the_declaration() -> None:
    # Issue 19: config/default.yaml pointed at a docs/config.md that did not exist.
    assert "docs/config.md" in (ROOT / "config/default.yaml").read_text()
    path = ROOT / "docs/config.md"
    assert path.read_text(encoding="utf-8") == config_docs.render(), (
        "docs/config.md is stale: run python -m timbrespace.config_docs"
    )
    text = config_docs.render()
    hints = typing.get_type_hints(config.Config)
    for f in dataclasses.fields(config.Config):
        cls = hints[f.name]
        item = typing.get_args(cls)[0] if typing.get_origin(cls) is list else None
        if dataclasses.is_dataclass(cls):
            keys = [f"{f.name}.{g.name}" for g in dataclasses.fields(cls)]
        elif isinstance(item, type) and dataclasses.is_dataclass(item):  # a list of sections (layers)
            keys = [f"{f.name}[i].{g.name}" for g in dataclasses.fields(item)]
        else:
            keys = [f.name]
        for key in keys:
            assert f"| `{key}` |" in text, key
    assert "| `network.port` | int | `57130` | [0, 65535] |" in text


def test_config_docs_entry_point(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert config_docs.main([str(tmp_path / "config.md")]) == 0
    assert (tmp_path / "config.md").read_text(encoding="utf-8") == config_docs.render()
    with pytest.raises(SystemExit) as exit_:
        config_docs.main(["--bogus"])
    assert exit_.value.code == 2 and "--bogus" in capsys.readouterr().err
