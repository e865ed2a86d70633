"""The project's voice against amSynth itself (its DSSI plugin), family by family.

Each sweep changes one parameter family with the rest fixed, renders the same
notes both ways and checks that the project's measure follows amSynth's.
Tolerances are measured figures plus a margin (docs/fidelity.md has the figures).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

os.environ.setdefault("PYO_GUI_WX", "0")

import numpy as np
import numpy.typing as npt
import pytest

from timbrespace.fidelity import compare, features, reference
from timbrespace.patch import params

pytestmark = [pytest.mark.numeric,
              pytest.mark.skipif(not reference.available(), reason="amSynth's DSSI plugin is not installed")]

SR = 48000
BANKS = Path("/usr/share/amsynth/banks")
IDX = params.INDEX
Audio = npt.NDArray[np.float32]
q = compare.on_block


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))  # the plugin writes its config folder there


def patch(**values: float) -> npt.NDArray[np.float64]:
    """A plain saw through a low-pass (amSynth's defaults), quieter, velocity-insensitive."""
    v = params.DEFAULTS.copy()
    v[IDX["master_vol"]] = 0.4
    v[IDX["amp_vel_sens"]] = 0.0
    v[IDX["filter_vel_sens"]] = 0.0
    for name, value in values.items():
        v[IDX[name]] = value
    return v


NOTE = ((0.0, q(0.6), 48, 100),)


def both(v: npt.NDArray[np.float64], notes: Sequence[compare.Note] = NOTE, duration: float = 0.7
         ) -> tuple[Audio, Audio]:
    return compare.render_both(v, notes, duration)


def steady(x: Audio, start: float = 0.2, end: float = 0.55) -> Audio:
    return x[round(start * SR) : round(end * SR)]


def mean_centroid(x: Audio, start: float = 0.2, end: float = 0.55) -> float:
    """Mean centroid over the frames whose whole window lies in [start, end] s of the render.

    Frames are taken from the whole render: a frame centred near the edge of a cut-out
    piece sees the cut (a step into zero padding), whose broadband click once dominated
    the mean and read as a 0.2-0.5 octave difference that was not in the sound.
    """
    c = features.centroid(x, SR)
    centre = np.arange(len(c)) * features.HOP / SR
    half = features.N_FFT / 2 / SR
    inside = (centre - half >= start - 1e-9) & (centre + half <= end + 1e-9)
    return float(np.nanmean(c[inside]))


def level_db(x: Audio) -> float:
    return float(20 * np.log10(np.sqrt((features.mono(x) ** 2).mean()) + 1e-10))


def sweep(name: str, values: Sequence[float], measure: Callable[[Audio], float], base: dict[str, float] | None = None,
          notes: Sequence[compare.Note] = NOTE, duration: float = 0.7
          ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(project, amSynth) measures along a sweep of one parameter."""
    ours, theirs = [], []
    for x in values:
        a, b = both(patch(**{**(base or {}), name: x}), notes, duration)
        ours.append(measure(a))
        theirs.append(measure(b))
    return np.array(ours), np.array(theirs)


def octaves(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> float:
    return float(np.abs(np.log2(a / b)).max())


def corr(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> float:
    return float(np.corrcoef(a, b)[0, 1])


# -- the harness -----------------------------------------------------------------------------


def test_reference_is_a_fresh_amsynth_and_says_when_missing(tmp_path: Path) -> None:
    v = patch()
    a = reference.render(v, NOTE, 0.3)
    assert a.shape == (round(0.3 * SR) // 256 * 256, 2) and a.dtype == np.float32
    np.testing.assert_array_equal(a, reference.render(v, NOTE, 0.3))  # deterministic
    assert np.abs(a).max() > 0.05
    with pytest.raises(reference.ReferenceUnavailable, match="not installed"):
        reference.render(v, NOTE, 0.3, plugin=tmp_path / "missing.so")
    with pytest.raises(ValueError, match="41 values"):
        reference.render(v[:40], NOTE, 0.3)
    assert np.array_equal(a, reference.render(v, NOTE, 0.3))  # the worker survives its errors


def test_reference_runs_in_a_worker_that_reports_its_death_and_closes_cleanly() -> None:
    import signal
    import time

    v = patch()
    with reference.Worker() as w:
        a = w.render(v, NOTE, 0.3)
        pid = w.pid
        assert pid is not None and pid != os.getpid()
        # the plugin is mapped in the worker, never in this process (where pyo renders)
        assert "amsynth_dssi" in Path(f"/proc/{pid}/maps").read_text()
        assert "amsynth_dssi" not in Path("/proc/self/maps").read_text()
        os.kill(pid, signal.SIGKILL)
        while w.pid is not None:  # gone once the kernel has it (pid polls)
            time.sleep(0.01)
        with pytest.raises(reference.WorkerError, match=r"died \(signal 9\) before 'render'"):
            w.render(v, NOTE, 0.3)
        np.testing.assert_array_equal(w.render(v, NOTE, 0.3), a)  # a fresh worker on the next call
        pid = w.pid
        b = w.bench(v, voices=8, seconds=0.2)
        assert b["cpu_s"] > 0 and b["wall_s"] > 0 and b["seconds_rendered"] == pytest.approx(0.2, abs=0.006), b
    assert w.pid is None
    assert pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # reaped, not a zombie


def test_compare_command_reports_the_four_measures_for_a_factory_preset(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from timbrespace.cli import main

    if not BANKS.is_dir():
        pytest.skip("amSynth's factory banks are not installed")
    assert main(["compare"]) == 2  # neither --preset nor --all
    assert main(["compare", "--preset", "BriansBank01/basic11", "--out-json", str(tmp_path / "f.json")]) == 0
    assert "log-mel distance" in capsys.readouterr().out
    c = json.loads((tmp_path / "f.json").read_text())["BriansBank01/basic11"]
    assert c["logmel_db"] < 2.5  # 1.26 measured
    assert c["envelope_db"] < 1.0  # 0.43
    assert c["centroid_octaves"] < 0.1  # 3.9%
    assert abs(1200 * np.log2(c["f0_ours"] / c["f0_theirs"])) < 5
    ours, theirs = c["times_ours"], c["times_theirs"]
    assert abs(ours["sustain_db"] - theirs["sustain_db"]) < 1.5
    assert ours["release"] == pytest.approx(theirs["release"], rel=0.15)  # 0.632 vs 0.658 s


def test_identification_short_form() -> None:
    """40 factory presets (seeded): each project render is nearest its own amSynth render."""
    from timbrespace.patch.library import PresetLibrary

    if not BANKS.is_dir():
        pytest.skip("amSynth's factory banks are not installed")
    lib = PresetLibrary([BANKS])
    chosen = np.sort(np.random.default_rng(0).choice(len(lib), 40, replace=False))
    # In this process (workers=1): amSynth renders in its worker, so pyo here is never beside it.
    s = compare.identify(lib.values()[chosen], [lib.qualified_name(int(i)) for i in chosen], workers=1).summary()
    assert s["nonfinite_ours"] == [] and s["nonfinite_amsynth"] == []
    assert s["identified"] >= 0.95  # 40 of 40 measured
    assert s["own_median_db"] < s["between_median_db"] / 3  # 1.39 vs 14.1 dB


@pytest.mark.slow
def test_identification_whole_factory_set() -> None:
    """All 3,303 presets (11-15 min on 2 cores); the figure in docs/fidelity.md."""
    from timbrespace.patch.library import PresetLibrary

    if not BANKS.is_dir():
        pytest.skip("amSynth's factory banks are not installed")
    lib = PresetLibrary([BANKS])
    n = lib.factory_count
    s = compare.identify(lib.values()[:n], [lib.qualified_name(i) for i in range(n)]).summary()
    assert s["nonfinite_ours"] == [] and s["nonfinite_amsynth"] == []
    assert s["identified"] >= 0.95
    assert s["own_median_db"] < s["between_median_db"] / 3


# -- sweeps, one parameter family at a time ------------------------------------------------------


def test_cutoff() -> None:
    o, t = sweep("filter_cutoff", [-0.3, 0.0, 0.3, 0.6, 1.0, 1.5], mean_centroid)
    assert octaves(o, t) < 0.05  # 0.001 measured
    assert corr(np.log(o), np.log(t)) > 0.99


def test_resonance() -> None:
    o, t = sweep("filter_resonance", [0.0, 0.3, 0.6, 0.8, 0.9, 0.97], lambda x: level_db(steady(x)),
                 {"filter_cutoff": 0.3})
    assert np.abs(o - t).max() < 1.0  # dB; 0.3 measured (at 0.97)


@pytest.mark.parametrize("slope", [0, 1])
def test_filter_types_and_slopes(slope: int) -> None:
    o, t = sweep("filter_type", [0, 1, 2, 3, 4], mean_centroid,
                 {"filter_cutoff": 0.5, "filter_slope": slope, "filter_resonance": 0.3})
    assert octaves(o, t) < 0.05  # 0.004 measured


def test_filter_env_amount() -> None:
    o, t = sweep("filter_env_amount", [-16, -8, -2, 0, 2, 8, 16], lambda x: mean_centroid(x, 0.0, 0.4),
                 {"filter_cutoff": 0.2, "filter_decay": 0.6, "filter_sustain": 0.0})
    assert corr(np.log(o), np.log(t)) > 0.95
    assert octaves(o, t) < 0.25  # 0.14 measured at -16 (cutoff at its 10 Hz floor); 0.01-0.04 elsewhere


@pytest.mark.parametrize(("name", "values"), [("osc2_detune", [-1.0, -0.5, -0.1, 0.0, 0.3, 1.0]),
                                              ("osc2_range", [-1, 0, 1, 2, 4]),
                                              ("osc2_pitch", [-12, -5, 0, 7, 12])])
def test_osc2_detune_range_and_pitch(name: str, values: list[float]) -> None:
    o, t = sweep(name, values, lambda x: features.f0(steady(x), SR, fmax=4000.0), {"osc_mix": 1.0})
    assert np.abs(1200 * np.log2(o / t)).max() < 5  # cents; 2 measured


def _tremolo(x: Audio) -> npt.NDArray[np.float64]:
    return features.rms_db(x, SR, 0.01)[10:55]


@pytest.mark.parametrize("shape", [0, 1, 2, 5, 6])
def test_lfo_shapes(shape: int) -> None:
    a, b = both(patch(lfo_waveform=shape, lfo_freq=3.0, amp_mod_amount=1.0))
    assert corr(_tremolo(a), _tremolo(b)) > 0.97  # 0.98-0.997 measured


def test_lfo_noise_shapes_have_amsynths_depth() -> None:
    # Noise (3) is random on both sides: only its depth can match; sample-and-hold (4) draws
    # one value per LFO period, so 0.45 s at 3 Hz is too few draws to compare (docs/fidelity.md).
    a, b = both(patch(lfo_waveform=3, lfo_freq=3.0, amp_mod_amount=1.0))
    assert _tremolo(a).std() == pytest.approx(_tremolo(b).std(), rel=0.3)
    assert _tremolo(a).mean() == pytest.approx(_tremolo(b).mean(), abs=1.0)


@pytest.mark.parametrize("rate", [0.5, 1.5, 3.0, 6.0, 7.5])
def test_lfo_rate(rate: float) -> None:
    a, b = both(patch(lfo_waveform=0, lfo_freq=rate, amp_mod_amount=1.0))
    assert corr(_tremolo(a), _tremolo(b)) > 0.85  # 0.89 measured at 7.5 (amSynth: per-chunk LFO)


def test_distortion() -> None:
    sine = {"osc1_waveform": 0, "osc2_waveform": 0, "filter_type": 4}
    crunch = [0.0, 0.2, 0.5, 0.7, 0.9]
    o, t = sweep("distortion_crunch", crunch, mean_centroid, sine)
    assert octaves(o, t) < 0.05  # 0.02 measured
    o, t = sweep("distortion_crunch", crunch, lambda x: level_db(steady(x)), sine)
    assert np.abs(o - t).max() < 0.5  # dB


SHORT = ((0.0, q(0.2), 60, 100),)


def _tail(x: Audio) -> float:
    return level_db(x[round(0.5 * SR) : round(1.2 * SR)])


def test_reverb_wet_and_room() -> None:
    o, t = sweep("reverb_wet", [0.1, 0.3, 0.6, 1.0], _tail, {"reverb_roomsize": 0.7}, SHORT, 1.3)
    assert np.abs(o - t).max() < 4.5 and corr(o, t) > 0.99  # a known difference: tails 3.1 dB louder
    o, t = sweep("reverb_roomsize", [0.2, 0.5, 0.8, 1.0], _tail, {"reverb_wet": 0.5}, SHORT, 1.3)
    assert np.abs(o - t).max() < 5.5 and corr(o, t) > 0.99  # 0.1-4.4 dB louder, growing with room
    o, t = sweep("reverb_damp", [0.0, 0.5, 1.0], lambda x: mean_centroid(x, 0.4, 1.0),
                 {"reverb_wet": 0.5, "reverb_roomsize": 0.8}, SHORT, 1.3)
    assert octaves(o, t) < 0.3  # 0.2 measured
    assert o[0] > o[1] > o[2]


def _glide_reaches(x: Audio) -> float:
    """Seconds after the second note until the pitch is within 1% of 440 Hz."""
    import librosa

    m = features.mono(x)[round(q(0.3) * SR) :]
    track = librosa.yin(m, fmin=100, fmax=1000, sr=SR, frame_length=2048, hop_length=240)
    near = np.flatnonzero(np.abs(np.log2(track / 440.0)) < 0.01)
    return float(near[0] * 240 / SR) if len(near) else float("nan")


def test_portamento() -> None:
    notes = ((0.0, q(0.3), 57, 100), (q(0.3), q(1.2), 69, 100))
    o, t = sweep("portamento_time", [0.0, 0.1, 0.3, 0.6], _glide_reaches,
                 {"osc1_waveform": 0, "osc2_waveform": 0, "filter_type": 4}, notes, 1.3)
    assert np.abs(o - t).max() < 0.015  # s; 5 ms measured


def test_portamento_mode_legato_glides_only_between_held_keys() -> None:
    sine = {"osc1_waveform": 0, "osc2_waveform": 0, "filter_type": 4, "portamento_mode": 1, "keyboard_mode": 1}
    apart = ((0.0, q(0.3), 57, 100), (q(0.3), q(1.2), 69, 100))
    held = ((0.0, q(0.5), 57, 100), (q(0.3), q(1.2), 69, 100))
    for notes, glide in ((apart, 0.0), (held, 0.3)):
        o, t = sweep("portamento_time", [0.3], _glide_reaches, sine, notes, 1.3)
        assert abs(o[0] - t[0]) < 0.015 and t[0] == pytest.approx(glide, abs=0.02)  # 0-5 ms apart measured


def _velocity_sweep(measure: Callable[[Audio], float], **values: float
                    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    o, t = [], []
    for vel in (20, 50, 80, 110, 127):
        a, b = both(patch(**values), ((0.0, q(0.6), 48, vel),))
        o.append(measure(a))
        t.append(measure(b))
    return np.array(o), np.array(t)


def test_amp_velocity() -> None:
    o, t = _velocity_sweep(lambda x: level_db(steady(x)), amp_vel_sens=1.0)
    assert np.abs(o - t).max() < 0.3  # dB; 0.03 measured


def test_filter_velocity() -> None:
    o, t = _velocity_sweep(lambda x: mean_centroid(x, 0.0, 0.4), filter_vel_sens=1.0, filter_cutoff=0.3,
                           filter_env_amount=8.0, filter_decay=0.5, filter_sustain=0.2)
    assert octaves(o, t) < 0.1  # 0.03 measured


@pytest.mark.parametrize("track", [0.0, 0.5, 1.0])
def test_key_tracking(track: float) -> None:
    o, t = [], []
    for note in (36, 48, 60, 72, 84):
        a, b = both(patch(filter_kbd_track=track, filter_cutoff=0.3, filter_resonance=0.5), ((0.0, q(0.6), note, 100),))
        o.append(mean_centroid(a))
        t.append(mean_centroid(b))
    ours, theirs = np.array(o), np.array(t)
    assert corr(np.log(ours), np.log(theirs)) > 0.99
    assert octaves(ours, theirs) < 0.05  # 0.02 measured (C2, no tracking); 0.000 with tracking


@pytest.mark.parametrize(("name", "key"), [("amp_attack", "attack"), ("amp_decay", "decay"),
                                           ("amp_release", "release")])
def test_envelope_times(name: str, key: str) -> None:
    one = ((0.0, q(0.8), 48, 100),)
    for x in (0.5, 0.7, 0.9):  # 0.06-0.33 s (amSynth's times grow as the cube of the value)
        a, b = both(patch(**{name: x, "amp_sustain": 0.3 if key == "decay" else 1.0}), one, 1.6)
        ours, theirs = (getattr(features.envelope_times(y, 0.0, q(0.8), SR), key) for y in (a, b))
        assert ours == pytest.approx(theirs, rel=0.1, abs=0.005), x
