"""amSynth ``.bank`` files: strict reader, amSynth-identical writer.

The format, as amSynth's PresetController reads and writes it::

    amSynth
    <preset> <name> NAME WITH SPACES
    <parameter> amp_attack 0.0333333
    ...
    EOF

amSynth's reader requires the 8 bytes ``amSynth\\n``, starts a preset at every
``<preset> <name> `` line (the name is the rest of the line, trailing spaces
included), sets parameters by name (any order; missing ones keep their
default), clamps and quantises every value (``Parameter::setValue``) and
ignores every other line.  It holds at most 128 presets per bank.  It writes
floats with C++ stream defaults (``%g``, 6 significant digits) and ends the
file with ``EOF``.

This reader is stricter than amSynth (which parses garbage as numbers and
crashes on unknown parameters): anything amSynth would not have written raises
:class:`BankFormatError` naming the file, the line and what was expected.
Values are canonical: clamped as amSynth does, then rounded to the 6
significant digits amSynth writes, so read -> write -> read is exact and the
values here equal what amSynth itself loads and saves.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from timbrespace.fsutil import atomic_write_text
from timbrespace.patch import params

HEADER = "amSynth"
TRAILER = "EOF"
MAX_PRESETS = 128  # PresetController::kNumPresets: amSynth overruns its array beyond this
_PRESET_PREFIX = "<preset> <name> "
_PARAM_PREFIX = "<parameter> "
# What C++ ``operator<<(float)`` can produce for a finite value, and nothing else.
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class BankFormatError(ValueError):
    """A bank file that amSynth's writer could not have produced."""

    def __init__(self, path: str | os.PathLike[str], line: int, problem: str, expected: str) -> None:
        self.path = str(path)
        self.line = line
        self.problem = problem
        self.expected = expected
        super().__init__(f"{self.path}:{line}: {problem}; expected {expected}")


def format_value(value: float) -> str:
    """A value as amSynth writes it (C++ stream default: ``%g``, 6 significant digits)."""
    return f"{value:.6g}"


def canonical(values: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Clamp/quantise like amSynth, then round to the 6 digits amSynth writes.

    Idempotent, and a fixed point of write -> read; every preset value passes
    through it.
    """
    raw = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(raw)):
        raise ValueError(f"patch values must be finite, got {raw.tolist()}")
    v = params.clamp_vector(raw)
    # "+ 0.0" turns -0.0 into 0.0, so equal presets have equal bytes (dedupe compares bytes).
    return np.array([float(format_value(x)) + 0.0 for x in v], dtype=np.float64)


def bank_key(path: str | os.PathLike[str]) -> str:
    """The bank's short name: the file name up to its first dot, as amSynth names banks."""
    return Path(path).name.split(".", 1)[0]


def check_name(name: str) -> str:
    """Return ``name`` if a bank line can hold it (no line breaks or other control characters)."""
    if _CONTROL.search(name):
        raise ValueError(f"preset name {name!r} contains a control character; expected printable text")
    return name


@dataclass(frozen=True, eq=False)
class Preset:
    """One named patch: 41 values in amSynth order (read-only), from bank ``bank``."""

    name: str
    values: npt.NDArray[np.float64]
    bank: str

    def __post_init__(self) -> None:
        v = np.array(self.values, dtype=np.float64)  # a private copy, so freezing cannot alias
        if v.shape != (params.N_PARAMS,):
            raise ValueError(f"a preset has {params.N_PARAMS} values, got shape {v.shape}")
        v.flags.writeable = False
        object.__setattr__(self, "values", v)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Preset):
            return NotImplemented
        return (self.name, self.bank) == (other.name, other.bank) and bool(
            np.array_equal(self.values, other.values)
        )

    def __hash__(self) -> int:
        return hash((self.name, self.bank, self.values.tobytes()))

    def __repr__(self) -> str:
        return f"Preset(name={self.name!r}, bank={self.bank!r})"


def _decode_lines(path: Path, data: bytes) -> list[str]:
    lines = data.split(b"\n")
    out: list[str] = []
    for number, raw in enumerate(lines, start=1):
        try:
            out.append(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise BankFormatError(
                path,
                number,
                f"invalid UTF-8 byte {raw[exc.start]:#04x} at column {exc.start + 1}",
                "UTF-8 text",
            ) from None
    return out


def read_bank(path: str | os.PathLike[str]) -> list[Preset]:
    """Read every preset of an amSynth bank file; see the module docstring for the rules."""
    p = Path(path)
    lines = _decode_lines(p, p.read_bytes())
    if lines[0] != HEADER:
        raise BankFormatError(p, 1, f"header is {lines[0][:40]!r}", f"the line {HEADER!r}")
    key = bank_key(p)
    presets: list[Preset] = []
    name: str | None = None
    values = params.DEFAULTS.copy()
    seen: set[str] = set()

    def finish() -> None:
        if name is not None:
            presets.append(Preset(name, canonical(values), key))

    # A file ending in "\n" splits into a last empty string, which is not a line.
    body = lines[1:-1] if lines[-1] == "" else lines[1:]
    for number, line in enumerate(body, start=2):
        if line.startswith(_PRESET_PREFIX):
            finish()
            name = line[len(_PRESET_PREFIX) :]
            if _CONTROL.search(name):
                raise BankFormatError(
                    p, number, f"preset name {name!r} has a control character", "printable text"
                )
            values = params.DEFAULTS.copy()  # amSynth: a new Preset starts from the defaults
            seen = set()
        elif line.startswith(_PARAM_PREFIX):
            if name is None:
                raise BankFormatError(
                    p, number, "a parameter before any preset", f"'{_PRESET_PREFIX}NAME' first"
                )
            fields = line[len(_PARAM_PREFIX) :].split(" ")
            if len(fields) != 2:
                raise BankFormatError(p, number, f"{line!r} is malformed", "'<parameter> NAME VALUE'")
            pname, text = fields
            if pname not in params.INDEX:
                raise BankFormatError(
                    p, number, f"unknown parameter {pname!r}", f"one of amSynth's: {', '.join(params.NAMES)}"
                )
            if pname in seen:
                raise BankFormatError(
                    p, number, f"parameter {pname!r} given twice in one preset", "each once"
                )
            if not _NUMBER.fullmatch(text):
                raise BankFormatError(
                    p, number, f"value {text!r} of {pname} is not a number", "a decimal number"
                )
            number_value = float(text)
            if not math.isfinite(number_value):
                raise BankFormatError(
                    p, number, f"value {text!r} of {pname} is not finite", "a finite number"
                )
            seen.add(pname)
            values[params.INDEX[pname]] = number_value
        elif line == TRAILER:
            rest = [i for i, extra in enumerate(body[number - 1 :], start=number + 1) if extra != ""]
            if rest:
                raise BankFormatError(p, rest[0], "text after the EOF line", "nothing after EOF")
            finish()
            return presets
        elif line == "":
            continue  # amSynth skips blank lines too
        else:
            raise BankFormatError(
                p,
                number,
                f"unexpected line {line[:60]!r}",
                f"'{_PRESET_PREFIX}NAME', '{_PARAM_PREFIX}NAME VALUE' or EOF",
            )
    raise BankFormatError(
        p, len(body) + 2, "the file ends without the EOF line (truncated?)", f"a last line {TRAILER!r}"
    )


def bank_text(presets: Iterable[Preset]) -> Iterable[str]:
    """The bank file's lines (with newlines), exactly as amSynth's savePresets writes them."""
    yield HEADER + "\n"
    for count, preset in enumerate(presets, start=1):
        if count > MAX_PRESETS:
            raise ValueError(f"an amSynth bank holds at most {MAX_PRESETS} presets")
        yield f"{_PRESET_PREFIX}{check_name(preset.name)}\n"
        values = canonical(preset.values)
        for pname, value in zip(params.NAMES, values, strict=True):
            yield f"{_PARAM_PREFIX}{pname} {format_value(value)}\n"
    yield TRAILER + "\n"


def write_bank(path: str | os.PathLike[str], presets: Iterable[Preset]) -> None:
    """Write ``presets`` to ``path`` atomically: the old file stays whole if anything fails.

    The text goes to a temporary file in the same directory, is fsynced, then
    renamed over ``path`` (and the directory fsynced), so readers see either
    the old bank or the new one, never half of one.
    """
    # The whole text is built first: a bad preset fails before anything touches the disk.
    atomic_write_text(path, "".join(bank_text(presets)))


