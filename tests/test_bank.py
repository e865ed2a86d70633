"""amSynth bank files: exact round trips, strict errors, atomic writes, and the real amSynth's view.

The last tests load banks into the installed amSynth itself: its VST plugin
(``/usr/lib/vst/amsynth_vst.so``) is hosted headlessly through ctypes in a
subprocess, and ``effGetChunk`` returns amSynth's own serialisation of the
preset it loaded (``Preset::toString``), so its reader and writer are checked
against ours directly.  Run as a script, this file is that host.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from timbrespace.patch import params
from timbrespace.patch.bank import (
    MAX_PRESETS,
    BankFormatError,
    Preset,
    bank_key,
    canonical,
    format_value,
    read_bank,
    write_bank,
)

FACTORY = Path("/usr/share/amsynth/banks")
FACTORY_BANKS = sorted(FACTORY.glob("*.bank")) if FACTORY.is_dir() else []
VST = Path("/usr/lib/vst/amsynth_vst.so")
needs_factory = pytest.mark.skipif(not FACTORY_BANKS, reason="amSynth factory banks not installed")
needs_vst = pytest.mark.skipif(
    not VST.exists() or not FACTORY_BANKS, reason="amSynth VST plugin not installed"
)

GOOD = "amSynth\n<preset> <name> Two Words \n<parameter> amp_attack 0.5\n<parameter> osc2_pitch 7\nEOF\n"


def _write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def _rng_presets(n: int, seed: int = 0, bank: str = "test") -> list[Preset]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        raw = params.MINIMA + rng.random(params.N_PARAMS) * (params.MAXIMA - params.MINIMA)
        out.append(Preset(f"random {i}", canonical(raw), bank))
    return out


# ---------------------------------------------------------------- reading


def test_reads_a_small_bank_with_defaults_for_missing_parameters(tmp_path: Path) -> None:
    [p] = read_bank(_write(tmp_path / "Mine.user.bank", GOOD))
    assert p.name == "Two Words "  # trailing space is part of the name, as in amSynth
    assert p.bank == "Mine"
    expected = params.DEFAULTS.copy()
    expected[params.INDEX["amp_attack"]] = 0.5
    expected[params.INDEX["osc2_pitch"]] = 7.0
    np.testing.assert_array_equal(p.values, expected)


def test_values_are_clamped_and_quantised_like_amsynth(tmp_path: Path) -> None:
    text = (
        "amSynth\n<preset> <name> x\n<parameter> filter_resonance 3\n<parameter> osc2_pitch 3.4\n"
        "<parameter> freq_mod_amount 9\n<parameter> amp_decay 0.123456789\n<parameter> osc_mix -0\nEOF\n"
    )
    [p] = read_bank(_write(tmp_path / "c.bank", text))
    assert not np.signbit(p.values[params.INDEX["osc_mix"]])  # -0 is 0: equal presets, equal bytes
    assert p.values[params.INDEX["filter_resonance"]] == 0.97
    assert p.values[params.INDEX["osc2_pitch"]] == 3.0
    assert p.values[params.INDEX["freq_mod_amount"]] == 1.25992  # max, at the 6 digits amSynth writes
    assert p.values[params.INDEX["amp_decay"]] == 0.123457


def test_empty_bank_and_bank_key(tmp_path: Path) -> None:
    assert read_bank(_write(tmp_path / "e.bank", "amSynth\nEOF\n")) == []
    assert bank_key("/x/BriansBank01.amSynth.bank") == "BriansBank01"
    assert bank_key("default") == "default"


def test_preset_is_immutable_and_compares_by_value() -> None:
    v = params.DEFAULTS.copy()
    a = Preset("a", v, "b")
    v[0] = 1.0  # the preset keeps its own copy
    assert a.values[0] == 0.0
    with pytest.raises(ValueError):
        a.values[0] = 2.0
    assert a == Preset("a", params.DEFAULTS, "b")
    assert hash(a) == hash(Preset("a", params.DEFAULTS, "b"))
    assert a != Preset("a", params.DEFAULTS, "other")
    with pytest.raises(ValueError, match="41 values"):
        Preset("a", np.zeros(40), "b")


@pytest.mark.parametrize(
    ("text", "line", "what"),
    [
        ("amSynth2\nEOF\n", 1, "header"),
        ("amSynth\r\n<preset> <name> a\r\nEOF\r\n", 1, "header"),
        ("", 1, "header"),
        ("amSynth\n<preset> <name> a\n<parameter> amp_attack 0.5x\nEOF\n", 3, "not a number"),
        ("amSynth\n<preset> <name> a\n<parameter> amp_attack nan\nEOF\n", 3, "not a number"),
        ("amSynth\n<preset> <name> a\n<parameter> amp_attack 1e999\nEOF\n", 3, "not finite"),
        ("amSynth\n<preset> <name> a\n<parameter> amp_atack 0.5\nEOF\n", 3, "unknown parameter 'amp_atack'"),
        ("amSynth\n<preset> <name> a\n<parameter> amp_attack\nEOF\n", 3, "malformed"),
        ("amSynth\n<preset> <name> a\n<parameter> amp_attack  0.5\nEOF\n", 3, "malformed"),
        ("amSynth\n<parameter> amp_attack 0.5\nEOF\n", 2, "before any preset"),
        ("amSynth\n<preset> <name> a\n<parameter> amp_attack 0\n<parameter> amp_attack 1\nEOF\n", 4, "twice"),
        ("amSynth\n<preset> <name> a\n<parameter> amp_attack 0\n", 4, "without the EOF line"),
        ("amSynth\n<preset> <name> a\nEOF\n<preset> <name> b\n", 4, "after the EOF"),
        ("amSynth\n<preset> <name> a\ngarbage\nEOF\n", 3, "unexpected line"),
        ("amSynth\n<preset> <name> a\tb\nEOF\n", 2, "control character"),
    ],
)
def test_malformed_banks_name_file_and_line(tmp_path: Path, text: str, line: int, what: str) -> None:
    path = _write(tmp_path / "bad.bank", text)
    with pytest.raises(BankFormatError) as info:
        read_bank(path)
    err = info.value
    assert err.line == line
    assert what in str(err)
    assert str(err).startswith(f"{path}:{line}: ")
    assert "expected" in str(err)


def test_non_utf8_names_file_and_line(tmp_path: Path) -> None:
    path = _write(tmp_path / "bin.bank", b"amSynth\n<preset> <name> caf\xe9\nEOF\n")
    with pytest.raises(BankFormatError, match=r"bin\.bank:2: invalid UTF-8 byte 0xe9 at column 20"):
        read_bank(path)


@needs_factory
def test_truncated_factory_bank_is_an_error(tmp_path: Path) -> None:
    data = FACTORY_BANKS[0].read_bytes()
    cut_at_line = data[: data.index(b"\n", len(data) // 2) + 1]  # whole lines, no EOF
    cut_mid_line = data[: len(data) // 2 + 7]
    for i, cut in enumerate((cut_at_line, cut_mid_line)):
        path = _write(tmp_path / f"cut{i}.bank", cut)
        with pytest.raises(BankFormatError) as info:
            read_bank(path)
        assert info.value.line == cut.count(b"\n") + 1, str(info.value)


# ---------------------------------------------------------------- round trips


@needs_factory
def test_every_factory_bank_round_trips_exactly(tmp_path: Path) -> None:
    identical = 0
    for path in FACTORY_BANKS:
        first = read_bank(path)
        assert 0 < len(first) <= MAX_PRESETS
        out = tmp_path / path.name
        write_bank(out, first)
        again = read_bank(out)
        assert [p.name for p in again] == [p.name for p in first]
        for a, b in zip(first, again, strict=True):
            assert a.values.tobytes() == b.values.tobytes(), (path.name, a.name)
        write_bank(tmp_path / "second.bank", again)  # the text is a fixed point too
        assert (tmp_path / "second.bank").read_bytes() == out.read_bytes()
        # A bank amSynth wrote in full (41 canonical values each, final newline) comes back byte for byte.
        original = path.read_text()
        lines = [ln for ln in original.splitlines() if ln.startswith("<parameter> ")]
        complete = len(lines) == 41 * len(first) and original.endswith("EOF\n")
        canonical_text = all(format_value(float(ln.split(" ")[2])) == ln.split(" ")[2] for ln in lines)
        if complete and canonical_text and out.read_text() == original:
            identical += 1
    assert identical >= 1


def test_written_values_use_amsynths_float_format(tmp_path: Path) -> None:
    v = params.DEFAULTS.copy()
    v[params.INDEX["amp_attack"]] = 1e-05
    v[params.INDEX["amp_decay"]] = 2.0 / 3.0
    write_bank(tmp_path / "f.bank", [Preset("f", v, "x")])
    text = (tmp_path / "f.bank").read_text()
    assert "<parameter> amp_attack 1e-05\n" in text
    assert "<parameter> amp_decay 0.666667\n" in text
    assert "<parameter> master_vol 0.67\n" in text
    assert text.startswith("amSynth\n<preset> <name> f\n") and text.endswith("EOF\n")


# ---------------------------------------------------------------- atomic writes


def _old_bank(tmp_path: Path) -> tuple[Path, bytes]:
    path = tmp_path / "keep.bank"
    write_bank(path, _rng_presets(3))
    return path, path.read_bytes()


def _no_temp_files(directory: Path) -> bool:
    return not [p for p in directory.iterdir() if p.name.endswith(".tmp")]


def test_failure_mid_write_leaves_old_file_intact(tmp_path: Path) -> None:
    path, before = _old_bank(tmp_path)

    def presets_then_crash():  # type: ignore[no-untyped-def]
        yield from _rng_presets(5, seed=1)
        raise RuntimeError("simulated crash while writing")

    with pytest.raises(RuntimeError, match="simulated crash"):
        write_bank(path, presets_then_crash())
    assert path.read_bytes() == before
    assert _no_temp_files(tmp_path)


@pytest.mark.parametrize("problem", ["newline in name", "non-finite value", "too many presets"])
def test_unwritable_presets_leave_old_file_intact(tmp_path: Path, problem: str) -> None:
    path, before = _old_bank(tmp_path)
    presets = _rng_presets(4, seed=2)
    if problem == "newline in name":
        presets.append(Preset("two\nlines", params.DEFAULTS, "x"))
    elif problem == "non-finite value":
        bad = params.DEFAULTS.copy()
        bad[3] = np.inf
        presets.append(Preset("inf", bad, "x"))
    else:
        presets = presets * (MAX_PRESETS // 4 + 1)
    with pytest.raises(ValueError):
        write_bank(path, presets)
    assert path.read_bytes() == before
    assert _no_temp_files(tmp_path)


def test_write_keeps_file_mode(tmp_path: Path) -> None:
    path, _ = _old_bank(tmp_path)
    os.chmod(path, 0o640)
    write_bank(path, _rng_presets(1))
    assert path.stat().st_mode & 0o777 == 0o640
    write_bank(tmp_path / "new.bank", [])
    assert (tmp_path / "new.bank").stat().st_mode & 0o777 == 0o644


# ---------------------------------------------------------------- the real amSynth


def _amsynth_view(tmp_path: Path, user_bank: Path | None, first: int, stop: int) -> list[str]:
    """amSynth's own text for programs ``first..stop-1`` (user bank first, then factory banks)."""
    home = tmp_path / "home"
    banks = home / "data" / "amsynth" / "banks"
    banks.mkdir(parents=True)
    (home / "config").mkdir()
    default = banks / "default"
    if user_bank is None:
        default.write_text("amSynth\nEOF\n")
    else:
        default.write_bytes(user_bank.read_bytes())
    env = dict(
        os.environ, HOME=str(home), XDG_DATA_HOME=str(home / "data"), XDG_CONFIG_HOME=str(home / "config")
    )
    run = subprocess.run(
        [sys.executable, __file__, str(first), str(stop)], env=env, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    chunks: list[str] = json.loads(run.stdout)
    return chunks


def _parse_chunk(chunk: str) -> tuple[str, dict[str, str]]:
    lines = chunk.split("\n")
    name = next(ln for ln in lines if ln.startswith("<preset> <name> "))[len("<preset> <name> ") :]
    values = {ln.split(" ")[1]: ln.split(" ")[2] for ln in lines if ln.startswith("<parameter> ")}
    return name, values


def _same_as_amsynth(ours: Preset, chunk: str) -> None:
    name, theirs = _parse_chunk(chunk)
    assert name == ours.name
    assert list(theirs) == list(params.NAMES)
    for pname, value in zip(params.NAMES, ours.values, strict=True):
        if pname == "portamento_mode":
            # amSynth 1.13.2 does not quantise it (step 0); params.py follows later amSynth (step 1).
            assert params.spec(pname).clamp(float(theirs[pname])) == value, (ours.name, pname)
        else:
            assert format_value(value) == theirs[pname], (ours.name, pname)


@needs_vst
def test_factory_banks_read_as_amsynth_reads_them(tmp_path: Path) -> None:
    chunks = _amsynth_view(tmp_path, None, MAX_PRESETS, MAX_PRESETS * (1 + len(FACTORY_BANKS)))
    for b, path in enumerate(FACTORY_BANKS):
        for i, preset in enumerate(read_bank(path)):
            _same_as_amsynth(preset, chunks[b * MAX_PRESETS + i])


@needs_vst
def test_written_bank_loads_in_amsynth(tmp_path: Path) -> None:
    tricky = ["Danger Pad/Bass", "Rockin' Piano ", "Cañón ☃", "", "x" * 200, "  spaced  out  "]
    presets = [
        Preset(n, p.values, "t") for n, p in zip(tricky, _rng_presets(len(tricky), seed=3), strict=True)
    ]
    tiny = params.DEFAULTS.copy()
    tiny[params.INDEX["amp_attack"]] = 2.5e-06  # written as 2.5e-06, amSynth's other number path
    tiny[params.INDEX["filter_cutoff"]] = -0.5
    tiny[params.INDEX["freq_mod_amount"]] = 99.0
    presets.append(Preset("edges", canonical(tiny), "t"))
    path = tmp_path / "written.bank"
    write_bank(path, presets)
    chunks = _amsynth_view(tmp_path, path, 0, len(presets) + 1)
    for preset, chunk in zip(presets, chunks[: len(presets)], strict=True):
        _same_as_amsynth(preset, chunk)
    assert _parse_chunk(chunks[-1])[1]["master_vol"] == "0.67"  # the slot after ours is blank


def _host_amsynth_vst(first: int, stop: int) -> None:
    """Print amSynth's ``Preset::toString`` for programs first..stop-1 as a JSON list."""
    import ctypes as c

    class AEffect(c.Structure):
        pass

    dispatcher = c.CFUNCTYPE(
        c.c_ssize_t, c.POINTER(AEffect), c.c_int32, c.c_int32, c.c_ssize_t, c.c_void_p, c.c_float
    )
    AEffect._fields_ = [  # the head of the VST 2 AEffect struct, as far as it is used here
        ("magic", c.c_int32),
        ("dispatcher", dispatcher),
        ("process", c.c_void_p),
        ("setParameter", c.c_void_p),
        ("getParameter", c.c_void_p),
        ("numPrograms", c.c_int32),
    ]
    host_callback = c.CFUNCTYPE(
        c.c_ssize_t, c.c_void_p, c.c_int32, c.c_int32, c.c_ssize_t, c.c_void_p, c.c_float
    )
    callback = host_callback(lambda effect, opcode, index, value, ptr, opt: 2400 if opcode == 1 else 0)
    lib = c.CDLL(str(VST))
    lib.VSTPluginMain.restype = c.POINTER(AEffect)
    lib.VSTPluginMain.argtypes = [host_callback]
    effect = lib.VSTPluginMain(callback)
    call = effect.contents.dispatcher
    eff_open, eff_set_program, eff_set_sample_rate, eff_get_chunk = 0, 2, 10, 23
    call(effect, eff_open, 0, 0, None, 0.0)
    call(effect, eff_set_sample_rate, 0, 0, None, 44100.0)
    out = []
    for program in range(first, stop):
        call(effect, eff_set_program, 0, program, None, 0.0)
        ptr = c.c_void_p()
        size = call(effect, eff_get_chunk, 1, 0, c.byref(ptr), 0.0)
        out.append(c.string_at(ptr, size).decode("utf-8"))
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    _host_amsynth_vst(int(sys.argv[1]), int(sys.argv[2]))
