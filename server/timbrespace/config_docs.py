"""docs/config.md, generated from the config declaration (``config.py``): ``python -m timbrespace.config_docs``.

Each key's type, default and allowed values come from the dataclasses and their range metadata;
its description from the ``#:`` comment above the field, else from the key's comment in
``config/default.yaml``. A test checks that the committed file is what this writes.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from timbrespace import config
from timbrespace.fsutil import write_generated
from timbrespace.state import OVERRIDES

ROOT = Path(__file__).resolve().parents[2]


def _field_comments(cls: type[Any]) -> dict[str, str]:
    """The ``#:`` comment lines directly above each field of a dataclass, joined."""
    out: dict[str, str] = {}
    pending: list[str] = []
    for line in inspect.getsource(cls).splitlines():
        s = line.strip()
        if s.startswith("#:"):
            pending.append(s[2:].strip())
            continue
        m = re.match(r"(\w+)\s*:", s)
        if m and pending:
            out[m[1]] = " ".join(pending)
        pending = []
    return out


def _yaml_comments(path: Path) -> dict[str, str]:
    """``section.key`` (or ``key``) -> the comment after it in a YAML config like config/default.yaml."""
    out: dict[str, str] = {}
    section = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^(\s*)(\w+):[^#]*?(?:#\s*(.*))?$", line)
        if not m:
            continue
        indent, key, comment = m[1], m[2], m[3]
        if not indent:
            section = key
        dotted = f"{section}.{key}" if indent else key
        if comment:
            out[dotted] = comment.strip()
    return out


def _type(hint: Any) -> str:
    if get_origin(hint) is Literal:
        return " \\| ".join(f"`{a}`" for a in get_args(hint))
    if get_origin(hint) in (types.UnionType, typing.Union):
        return " or ".join(_type(a) for a in get_args(hint))
    if get_origin(hint) is list:
        return f"list of {_type(get_args(hint)[0])}"
    return {bool: "bool", int: "int", float: "float", str: "string", Path: "path"}.get(hint, str(hint))


def _default(f: dataclasses.Field[Any]) -> str:
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        return ""
    if isinstance(value, list):
        return "[" + ", ".join(str(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    return f"`{value}`" if value != "" else '`""`'


def _range(f: dataclasses.Field[Any]) -> str:
    lo, hi = f.metadata.get("range", (None, None))
    if lo is None and hi is None:
        return ""
    return f"[{'-inf' if lo is None else f'{lo:g}'}, {'inf' if hi is None else f'{hi:g}'}]"


def _list_of_dataclass(hint: Any) -> type[Any] | None:
    """The item class of a ``list[SomeDataclass]`` field, else None."""
    if get_origin(hint) is list:
        (item,) = get_args(hint)
        if isinstance(item, type) and dataclasses.is_dataclass(item):
            return item
    return None


def _rows(cls: type[Any], prefix: str, yaml_docs: dict[str, str]) -> list[str]:
    hints = typing.get_type_hints(cls)
    docs = _field_comments(cls)
    rows = []
    for f in dataclasses.fields(cls):
        key = prefix + f.name
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint) or _list_of_dataclass(hint):
            continue
        doc = (docs.get(f.name) or yaml_docs.get(key, "")).replace("``", "`")
        if key in OVERRIDES:
            doc += ("" if not doc or doc.endswith(".") else ".") + (" " if doc else "")
            doc += "**A saved state overrides it** (see below)."
        rows.append(f"| `{key}` | {_type(hint)} | {_default(f)} | {_range(f)} | {doc.replace('|', '/')} |")
    return rows


def render() -> str:
    """The whole reference."""
    yaml_docs = _yaml_comments(config.DEFAULT_CONFIG)
    out = [
        "# Configuration reference",
        "",
        "<!-- Generated from server/timbrespace/config.py by `python -m timbrespace.config_docs`; do not edit. -->",
        "",
        "`timbrespace serve --config FILE.yaml` (and the other commands' `--config`) reads a YAML file;",
        "without one, `config/default.yaml`. Every key is optional and checked when loaded: an error",
        "names the key, the value and what is allowed. Relative paths in a config file resolve beside",
        "that file. Examples are in `config/examples/`.",
        "",
    ]
    hints = typing.get_type_hints(config.Config)
    top = [f for f in dataclasses.fields(config.Config)
           if not dataclasses.is_dataclass(hints[f.name]) and _list_of_dataclass(hints[f.name]) is None]
    header = ["| key | type | default | range | meaning |", "| --- | --- | --- | --- | --- |"]
    for f in dataclasses.fields(config.Config):
        cls = hints[f.name]
        if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
            continue
        out += [f"## `{f.name}`", "", (inspect.getdoc(cls) or "").strip(), "", *header,
                *_rows(cls, f.name + ".", yaml_docs), ""]
    for f in dataclasses.fields(config.Config):
        item = _list_of_dataclass(hints[f.name])
        if item is None:
            continue
        assert f.default_factory is not dataclasses.MISSING
        n = len(f.default_factory())
        doc = _field_comments(config.Config).get(f.name, "")
        out += [f"## `{f.name}`", "", (inspect.getdoc(item) or "").strip(), "",
                f"A list, one mapping per entry ({n} by default, each with the defaults below). {doc}", "",
                *header, *_rows(item, f.name + "[i].", yaml_docs), ""]
    if top:
        out += ["## Top level", "", *header, *_rows(config.Config, "", yaml_docs), ""]
    out += [
        "## What a saved state overrides",
        "",
        "With `state.persist` on, the server saves the engine heard and each engine's sound to",
        "`state.path` at exit, and restores it at the next start over these keys: "
        + ", ".join(f"`{k}`" for k in OVERRIDES) + ".",
        "The start-up log names the file and the keys it overrode; `timbrespace serve --fresh` starts from",
        "the config instead (the state is saved again at exit).",
        "",
    ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """Write docs/config.md (or the path given)."""
    return write_generated(argv, prog="python -m timbrespace.config_docs",
                           what="the configuration reference generated from config.py",
                           default=ROOT / "docs/config.md", render=render)


if __name__ == "__main__":
    raise SystemExit(main())
