"""The package's layers, read from the source: what may import what (issue 20's seams)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "server" / "timbrespace"


def imported(path: Path, package: str | None = None) -> set[str]:
    """Every module ``path`` imports, at its top or inside a function, as absolute names."""
    names: set[str] = set()
    package = package or "timbrespace." + ".".join(path.relative_to(PACKAGE).parent.parts)
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolved against the module's own package
                base = package.rstrip(".").split(".")
                base = base[: len(base) - (node.level - 1)]
                names.add(".".join([*base, node.module] if node.module else base))
            elif node.module:
                names.add(node.module)
    return names


@pytest.mark.parametrize("path", sorted((PACKAGE / "models").glob("*.py")), ids=lambda p: p.name)
def test_models_and_training_never_import_evaluation(path: Path) -> None:
    # Evaluation imports the models it measures; the other way round is a cycle.
    bad = sorted(m for m in imported(path) if m == "timbrespace.evaluate" or m.startswith("timbrespace.evaluate."))
    assert not bad, f"{path.name} imports {bad}"


def test_the_check_sees_imports_inside_functions(tmp_path: Path) -> None:
    src = tmp_path / "probe.py"
    src.write_text("def f():\n    from timbrespace.evaluate.plots import x\n    from ..evaluate import timbre\n")
    assert {"timbrespace.evaluate.plots", "timbrespace.evaluate"} <= imported(src, "timbrespace.models")


#: What the contract between the two processes may import from the package: itself, and the
#: parameter table (the patch mailbox's width). Never pyo, never torch.
LINK_MAY_IMPORT = ("timbrespace.link", "timbrespace.patch.params")


@pytest.mark.parametrize("path", sorted((PACKAGE / "link").glob("*.py")), ids=lambda p: p.name)
def test_the_link_between_the_processes_imports_neither_side(path: Path) -> None:
    bad = sorted(m for m in imported(path) if m.split(".")[0] in ("pyo", "torch")
                 or (m.startswith("timbrespace") and not m.startswith(LINK_MAY_IMPORT)))
    assert not bad, f"link/{path.name} imports {bad}"


@pytest.mark.parametrize("path", sorted((PACKAGE / "engines").glob("*.py")), ids=lambda p: p.name)
def test_engines_reach_the_audio_process_only_through_the_link(path: Path) -> None:
    bad = sorted(m for m in imported(path) if m.split(".")[0] == "pyo"
                 or m == "timbrespace.audio" or m.startswith("timbrespace.audio."))
    assert not bad, f"engines/{path.name} imports {bad}"
