"""The preset library: amSynth's factory banks (deduplicated) plus one user bank.

Indices are stable while the server runs: factory presets first (in bank file
order, each bank's presets in order), then the user bank's; a saved preset is
appended at the end.  Lookups take an index, an exact name, or ``bank/name``
where a name occurs in several banks.
"""

from __future__ import annotations

import os
import threading
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from timbrespace.patch import params
from timbrespace.patch.bank import MAX_PRESETS, Preset, bank_key, canonical, read_bank, write_bank

MAX_NAME_LENGTH = 64
_RESERVED_NAMES = frozenset({"unused"})
#: Unicode categories refused in names: controls, formats (bidi overrides, zero-width), separators.
_INVISIBLE = frozenset({"Cc", "Cf", "Zl", "Zp"})  # amSynth drops presets of this name when it saves a bank


@dataclass(frozen=True)
class LoadReport:
    """What loading found: files read, presets before and after removing duplicates."""

    banks: tuple[str, ...]
    factory_total: int
    factory_unique: int
    user: int

    @property
    def duplicates_dropped(self) -> int:
        """Factory presets dropped because an earlier one had identical values."""
        return self.factory_total - self.factory_unique


def validate_name(name: str) -> str:
    """Return ``name`` if it can be a saved preset's name; ValueError says why not.

    Names are names, never paths: no ``/``, not empty or only spaces, no
    leading/trailing spaces (invisible in lists), at most 64 characters, and not
    amSynth's reserved ``unused``.  No control, format or line-separator character
    (Unicode categories Cc, Cf, Zl, Zp): direction overrides would make a list show
    a name other than the one stored, zero-width characters two names that look
    the same; the refusal names the character as ``U+XXXX``.
    """
    if not isinstance(name, str):
        raise TypeError(f"a preset name is a str, got {type(name).__name__}")
    problem = None
    if not name.strip():
        problem = "it is empty"
    elif name != name.strip():
        problem = "it has leading or trailing spaces"
    elif "/" in name:
        problem = "it contains '/'"
    elif (bad := next((c for c in name if unicodedata.category(c) in _INVISIBLE), None)) is not None:
        what = unicodedata.name(bad, "a control character")
        problem = f"it contains U+{ord(bad):04X} ({what}), a control, format or line-separator character"
    elif len(name) > MAX_NAME_LENGTH:
        problem = f"it is longer than {MAX_NAME_LENGTH} characters"
    elif name in _RESERVED_NAMES:
        problem = "amSynth reserves it for empty slots"
    if problem:
        raise ValueError(
            f"invalid preset name {name!r}: {problem}; expected 1-{MAX_NAME_LENGTH} printable characters "
            "without '/' or surrounding spaces"
        )
    return name


def factory_bank_files(dirs: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Every ``*.bank`` file in ``dirs``, each directory sorted by file name as amSynth lists them."""
    files: list[Path] = []
    for d in dirs:
        directory = Path(d)
        if not directory.is_dir():
            raise FileNotFoundError(f"preset bank directory {directory} does not exist")
        files.extend(sorted(p for p in directory.iterdir() if p.name.endswith(".bank") and p.is_file()))
    return files


class PresetLibrary:
    """Factory presets (identical values kept once) followed by the user's presets.

    ``user_bank`` is an amSynth bank file; it is read if it exists and created
    on the first :meth:`append_user`.  Reads are lock-free (the preset list only
    grows, by whole-item appends); appends are serialised by a lock.
    """

    def __init__(
        self, factory_dirs: Iterable[str | os.PathLike[str]], user_bank: str | os.PathLike[str] | None = None
    ) -> None:
        self._lock = threading.Lock()
        self._user_path = Path(user_bank) if user_bank is not None else None
        files = factory_bank_files(factory_dirs)
        self._presets: list[Preset] = []
        seen: set[bytes] = set()
        total = 0
        for path in files:
            for preset in read_bank(path):
                total += 1
                key = preset.values.tobytes()
                if key not in seen:  # keep the first of identical presets
                    seen.add(key)
                    self._presets.append(preset)
        self._n_factory = len(self._presets)
        user = self._read_user()
        self._presets.extend(user)
        self.report = LoadReport(tuple(bank_key(p) for p in files), total, self._n_factory, len(user))

    # ------------------------------------------------------------ reading

    def __len__(self) -> int:
        return len(self._presets)

    def __getitem__(self, key: int | str) -> Preset:
        return self._presets[self.resolve(key)]

    def __iter__(self) -> Iterator[Preset]:
        return iter(list(self._presets))

    @property
    def user_bank(self) -> Path | None:
        """The user bank file, if there is one."""
        return self._user_path

    @property
    def factory_count(self) -> int:
        """How many (deduplicated) factory presets come before the user's."""
        return self._n_factory

    def names(self) -> list[str]:
        """Every preset's name, in index order (names may repeat across banks)."""
        return [p.name for p in self._presets]

    def qualified_name(self, index: int) -> str:
        """``bank/name`` of preset ``index``."""
        p = self[index]
        return f"{p.bank}/{p.name}"

    def values(self) -> npt.NDArray[np.float64]:
        """All presets' values as one ``(len(self), 41)`` array."""
        return (
            np.stack([p.values for p in self._presets]) if self._presets else np.empty((0, params.N_PARAMS))
        )

    def resolve(self, key: int | str) -> int:
        """The index of ``key``: an index, an exact name, or ``bank/name``.

        LookupError (IndexError for a bad index) names what was given and what
        would have been accepted, e.g. the ``bank/name`` candidates of an
        ambiguous name.
        """
        presets = self._presets
        if isinstance(key, bool) or not isinstance(key, int | str | np.integer):
            raise TypeError(f"a preset key is an index or a name, got {type(key).__name__}")
        if not isinstance(key, str):
            i = int(key)
            if not 0 <= i < len(presets):
                raise IndexError(f"no preset {i}; expected an index from 0 to {len(presets) - 1}")
            return i
        exact = [i for i, p in enumerate(presets) if p.name == key]
        if len(exact) == 1:
            return exact[0]
        if exact:
            candidates = [f"{presets[i].bank}/{presets[i].name}" for i in exact]
            if len(set(candidates)) == len(candidates):
                raise LookupError(
                    f"preset name {key!r} is in {len(exact)} banks; expected one of: {', '.join(candidates)}"
                )
            return self._only(key, exact)
        bank, sep, name = key.partition("/")
        if sep:
            qualified = [i for i, p in enumerate(presets) if p.bank == bank and p.name == name]
            if qualified:
                return self._only(key, qualified)
            if not any(p.bank == bank for p in presets):
                banks = sorted({p.bank for p in presets})
                raise LookupError(f"no preset bank {bank!r} in {key!r}; expected one of: {', '.join(banks)}")
            raise LookupError(f"no preset named {name!r} in bank {bank!r}; expected a name from that bank")
        raise LookupError(f"no preset named {key!r}; expected an exact name, 'bank/name', or an index")

    def _only(self, key: str, indices: Sequence[int]) -> int:
        if len(indices) == 1:
            return indices[0]
        # The same name twice in one bank: only the index tells them apart.
        where = ", ".join(f"{i} ({self._presets[i].bank})" for i in indices)
        raise LookupError(
            f"preset {key!r} is ambiguous even with its bank; expected one of the indices {where}"
        )

    # ------------------------------------------------------------ the user bank

    def _read_user(self) -> list[Preset]:
        if self._user_path is None or not self._user_path.exists():
            return []
        return read_bank(self._user_path)

    def append_user(self, name: str, values: npt.ArrayLike) -> Preset:
        """Save a new preset to the user bank (atomically) and append it to the library.

        ``values`` are clamped and rounded as amSynth stores them, so the
        returned preset equals what a reload reads back.  The user bank is
        re-read first, so presets another program (amSynth) saved meanwhile
        are kept.  ValueError if the name is invalid or taken in the user bank,
        or if the bank is full (amSynth's limit of 128 presets).
        """
        if self._user_path is None:
            raise RuntimeError("this library has no user bank configured")
        validate_name(name)
        factory = [f"{p.bank}/{p.name}" for p in self._presets[: self._n_factory] if p.name == name]
        if factory:
            # A plain-name load would then be ambiguous between the factory preset and the user's.
            raise ValueError(f"a factory preset is named {name!r} ({', '.join(factory)}); expected a name "
                             "no factory preset has")
        preset = Preset(name, canonical(values), bank_key(self._user_path))
        with self._lock:
            on_disk = self._read_user()
            if any(p.name == name for p in on_disk):
                raise ValueError(f"a preset named {name!r} is already in the user bank; expected a new name")
            if len(on_disk) >= MAX_PRESETS:
                # The file name only: the reason goes to the network in /patch/save's /fail.
                raise ValueError(
                    f"the user bank {self._user_path.name} is full ({MAX_PRESETS} presets, amSynth's limit)"
                )
            self._user_path.parent.mkdir(parents=True, exist_ok=True)
            write_bank(self._user_path, [*on_disk, preset])
            self._presets.append(preset)
        return preset
