"""The engine registry is the one declaration of the engines: what names them elsewhere must agree."""

from __future__ import annotations

import ast
import typing
from pathlib import Path

import pytest

from timbrespace.config import Config
from timbrespace.engines import registry
from timbrespace.link import commands as C
from timbrespace.protocol import addresses


def test_the_links_engine_codes_are_the_registrys_order() -> None:
    # link/ may not import engines/ (tests/test_layering.py), so it keeps its own table.
    assert {name: code for code, name in enumerate(registry.NAMES)} == C.ENGINE_CODES


def test_the_configs_engine_choices_are_the_registrys_engines() -> None:
    # A Literal is what mypy and config_docs read; it cannot be built from the registry at run time.
    assert typing.get_args(typing.get_type_hints(Config)["engine"]) == registry.NAMES


def test_the_protocol_serves_the_registrys_engines() -> None:
    assert addresses.ENGINES == registry.NAMES
    owners = {a.engine for a in addresses.ADDRESSES if a.engine is not None}
    assert owners <= set(registry.NAMES), f"addresses name engines the registry lacks: {owners - set(registry.NAMES)}"
    for spec in registry.SPECS:  # an optional engine's addresses are refused, by name, where it is missing
        assert spec.required or spec.addresses(), f"{spec.name}: no address declared as its own"


@pytest.mark.parametrize("spec", registry.SPECS, ids=lambda s: s.name)
def test_every_builder_path_names_a_function(spec: registry.EngineSpec) -> None:
    assert callable(registry.resolve(spec.control))
    assert callable(registry.resolve(spec.audio))  # imports pyo here, as the audio process does




@pytest.mark.parametrize("path", ["nodots", "timbrespace.engines.registry", "timbrespace.nowhere:x",
                                  "timbrespace.engines.registry:nothing"])
def test_a_bad_builder_path_says_which(path: str) -> None:
    with pytest.raises(ValueError, match="engine builder"):
        registry.resolve(path)


def test_the_registry_imports_nothing_of_the_package_when_loaded() -> None:
    # The address declaration and app take the names from it: a top-level import of the package
    # here (engines.base imports protocol.addresses) would be a cycle.
    tree = ast.parse(Path(registry.__file__).read_text())
    top = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    names = {a.name for n in top if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module or "" for n in top if isinstance(n, ast.ImportFrom)}
    assert not {m for m in names if m.startswith("timbrespace")}, names
