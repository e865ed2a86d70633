"""The preset library: factory dedupe, lookups, the user bank."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from timbrespace.patch import params
from timbrespace.patch.bank import MAX_PRESETS, Preset, read_bank, write_bank
from timbrespace.patch.library import PresetLibrary, validate_name

FACTORY = Path("/usr/share/amsynth/banks")
needs_factory = pytest.mark.skipif(not FACTORY.is_dir(), reason="amSynth factory banks not installed")


def _values(**changes: float) -> np.ndarray:
    v = params.DEFAULTS.copy()
    for name, value in changes.items():
        v[params.INDEX[name]] = value
    return v


@pytest.fixture()
def small_factory(tmp_path: Path) -> Path:
    """Two banks: a duplicate across banks, a name in both banks, a name twice in one bank."""
    d = tmp_path / "factory"
    d.mkdir()
    write_bank(
        d / "Alpha.amSynth.bank",
        [
            Preset("Pad", _values(amp_attack=1.0), "Alpha"),
            Preset("Lead", _values(amp_attack=0.1), "Alpha"),
            Preset("Twin", _values(osc2_pitch=1), "Alpha"),
            Preset("Twin", _values(osc2_pitch=2), "Alpha"),
        ],
    )
    write_bank(
        d / "Beta.bank",
        [
            Preset("Pad copy", _values(amp_attack=1.0), "Beta"),  # same values as Alpha/Pad: dropped
            Preset("Lead", _values(amp_attack=0.2), "Beta"),  # same name, other values: kept
            Preset("Bass/Sub", _values(osc2_range=-2), "Beta"),
        ],
    )
    (d / "notes.txt").write_text("not a bank")
    return d


def test_dedupe_keeps_first_and_counts(small_factory: Path) -> None:
    lib = PresetLibrary([small_factory])
    assert lib.report.banks == ("Alpha", "Beta")
    assert lib.report.factory_total == 7
    assert lib.report.factory_unique == 6
    assert lib.report.duplicates_dropped == 1
    assert len(lib) == 6
    assert lib.names() == ["Pad", "Lead", "Twin", "Twin", "Lead", "Bass/Sub"]
    assert "Pad copy" not in lib.names()


def test_resolve_by_index_name_and_bank_name(small_factory: Path) -> None:
    lib = PresetLibrary([small_factory])
    assert lib.resolve(0) == 0
    assert lib.resolve(np.int64(5)) == 5
    assert lib.resolve("Pad") == 0
    assert lib.resolve("Alpha/Lead") == 1
    assert lib.resolve("Beta/Lead") == 4
    assert lib.resolve("Bass/Sub") == 5  # an exact name with '/' wins over bank/name
    assert lib["Beta/Lead"].values[0] == pytest.approx(0.2)
    assert lib.qualified_name(4) == "Beta/Lead"


def test_ambiguous_name_lists_candidates(small_factory: Path) -> None:
    lib = PresetLibrary([small_factory])
    with pytest.raises(LookupError, match=r"'Lead' is in 2 banks; expected one of: Alpha/Lead, Beta/Lead"):
        lib.resolve("Lead")
    # The same name twice in one bank: only indices tell them apart.
    with pytest.raises(
        LookupError, match=r"ambiguous even with its bank; expected one of the indices 2 .*, 3 "
    ):
        lib.resolve("Alpha/Twin")


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (6, r"no preset 6; expected an index from 0 to 5"),
        (-1, r"no preset -1"),
        ("Nope", r"no preset named 'Nope'; expected an exact name, 'bank/name', or an index"),
        ("Gamma/Pad", r"no preset bank 'Gamma' in 'Gamma/Pad'; expected one of: Alpha, Beta"),
        ("Beta/Pad", r"no preset named 'Pad' in bank 'Beta'"),
    ],
)
def test_lookup_errors_say_what_is_expected(small_factory: Path, key: int | str, message: str) -> None:
    lib = PresetLibrary([small_factory])
    with pytest.raises(LookupError, match=message):
        lib.resolve(key)


def test_bad_key_types(small_factory: Path) -> None:
    lib = PresetLibrary([small_factory])
    for key in (True, 1.0, None):
        with pytest.raises(TypeError):
            lib.resolve(key)  # type: ignore[arg-type]


def test_user_bank_created_on_first_save_and_reloaded(small_factory: Path, tmp_path: Path) -> None:
    user = tmp_path / "user" / "mine.bank"
    lib = PresetLibrary([small_factory], user)
    assert not user.exists() and lib.report.user == 0
    saved = lib.append_user("My Pad", _values(amp_attack=0.123456789, filter_resonance=5.0))
    assert user.exists()
    assert saved.bank == "mine"
    assert saved.values[params.INDEX["amp_attack"]] == 0.123457  # stored as amSynth stores it
    assert saved.values[params.INDEX["filter_resonance"]] == 0.97
    assert len(lib) == 7 and lib.resolve("My Pad") == 6
    again = PresetLibrary([small_factory], user)
    assert again.report.user == 1
    assert again[6] == saved
    assert read_bank(user) == [saved]
    # A user preset is kept even when its values equal a factory preset's.
    lib.append_user("Pad again", _values(amp_attack=1.0))
    assert PresetLibrary([small_factory], user).names()[-2:] == ["My Pad", "Pad again"]


def test_append_keeps_presets_saved_meanwhile_by_others(small_factory: Path, tmp_path: Path) -> None:
    user = tmp_path / "mine.bank"
    lib = PresetLibrary([small_factory], user)
    lib.append_user("one", params.DEFAULTS)
    write_bank(user, [*read_bank(user), Preset("from amSynth", params.DEFAULTS, "mine")])
    lib.append_user("two", params.DEFAULTS)
    assert [p.name for p in read_bank(user)] == ["one", "from amSynth", "two"]


@pytest.mark.parametrize(
    "name", ["", "   ", "a/b", "../etc/passwd", "tab\there", "new\nline", "\x7f", " lead", "x" * 65, "unused"]
)
def test_invalid_user_names_are_rejected(small_factory: Path, tmp_path: Path, name: str) -> None:
    lib = PresetLibrary([small_factory], tmp_path / "mine.bank")
    with pytest.raises(ValueError, match="invalid preset name"):
        lib.append_user(name, params.DEFAULTS)
    assert not (tmp_path / "mine.bank").exists()
    assert validate_name("Ünïcode pad ☃") == "Ünïcode pad ☃"


def test_duplicate_user_name_and_full_bank(small_factory: Path, tmp_path: Path) -> None:
    user = tmp_path / "mine.bank"
    write_bank(user, [Preset(f"p{i}", params.DEFAULTS, "mine") for i in range(MAX_PRESETS - 1)])
    lib = PresetLibrary([small_factory], user)
    with pytest.raises(ValueError, match="already in the user bank"):
        lib.append_user("p3", params.DEFAULTS)
    lib.append_user("last", params.DEFAULTS)
    with pytest.raises(ValueError, match="full"):
        lib.append_user("one too many", params.DEFAULTS)
    assert len(read_bank(user)) == MAX_PRESETS


def test_no_user_bank_and_missing_dir(small_factory: Path, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="no user bank"):
        PresetLibrary([small_factory]).append_user("x", params.DEFAULTS)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        PresetLibrary([tmp_path / "nowhere"])


@needs_factory
def test_factory_library_counts() -> None:
    lib = PresetLibrary([FACTORY])
    r = lib.report
    assert len(r.banks) == 28
    assert r.factory_total == 3482
    assert r.factory_unique == len(lib) == 3303
    assert r.duplicates_dropped == 179
    assert lib.values().shape == (3303, 41)
    assert lib.resolve("Danger Pad/Bass") == lib.names().index("Danger Pad/Bass")
