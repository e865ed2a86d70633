"""The amSynth voice in pyo: pitch, oscillators, filter, envelopes, LFO, sync, ring modulation.

Every test renders real audio with pyo's manual backend and checks a number measured
on it (no golden files).  Patches start from amSynth's defaults with a quiet master
volume, so the soft limiter stays out of the way unless a test wants it.
"""

from __future__ import annotations

import itertools
import os

os.environ.setdefault("PYO_GUI_WX", "0")

import numpy as np
import numpy.typing as npt
import pytest

from timbrespace.audio import waves
from timbrespace.audio.offline import OfflineRenderer, render_patch
from timbrespace.audio.synth import PatchSynth
from timbrespace.patch import params

pytestmark = pytest.mark.numeric

SR = 48000
Audio = npt.NDArray[np.float32]


def patch(**values: float) -> npt.NDArray[np.float64]:
    """amSynth's default patch, quiet (limiter idle), with ``values`` changed."""
    v = params.DEFAULTS.copy()
    v[params.INDEX["master_vol"]] = 0.3
    for name, value in values.items():
        v[params.INDEX[name]] = value
    return v


SINE = {"osc1_waveform": 0, "osc2_waveform": 0, "osc_mix": -1.0, "filter_type": 4, "amp_vel_sens": 0.0}


Notes = tuple[tuple[float, float | None, int, int], ...]


def render(duration: float = 0.6, notes: Notes = ((0.0, None, 69, 100),), **values: float) -> Audio:
    return render_patch(patch(**values), notes, duration)


def left(a: Audio, start: float = 0.1, stop: float | None = None) -> npt.NDArray[np.float64]:
    return a[int(start * SR) : None if stop is None else int(stop * SR), 0].astype(np.float64)


def spectrum(x: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    mag = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return np.fft.rfftfreq(len(x), 1.0 / SR), mag


def f0(x: npt.NDArray[np.float64]) -> float:
    """Frequency of the strongest peak, refined by parabolic interpolation of log magnitudes."""
    f, mag = spectrum(x)
    k = int(np.argmax(mag[1:])) + 1
    a, b, c = np.log(mag[k - 1 : k + 2] + 1e-12)
    return float(f[k] + 0.5 * (a - c) / (a - 2 * b + c) * (f[1] - f[0]))


def centroid(x: npt.NDArray[np.float64]) -> float:
    f, mag = spectrum(x)
    return float((f * mag).sum() / mag.sum())


def band_db(x: npt.NDArray[np.float64], lo: float, hi: float) -> float:
    """Mean power density in [lo, hi) Hz, dB (comparable across band widths)."""
    f, mag = spectrum(x)
    return float(10 * np.log10((mag[(f >= lo) & (f < hi)] ** 2).mean() + 1e-20))


def rms_env(x: npt.NDArray[np.float64], hop: int = 240) -> npt.NDArray[np.float64]:
    n = len(x) // hop * hop
    return np.sqrt((x[:n].reshape(-1, hop) ** 2).mean(axis=1))


# -- wavetables ------------------------------------------------------------------------------


SHAPES = [(0, 0.0), (1, 0.0), (1, 0.5), (1, 0.9), (2, 0.0), (2, 0.6), (2, 1.0)]


@pytest.mark.parametrize(("waveform", "pw"), SHAPES)
def test_integrated_tables_match_the_waveforms(waveform: int, pw: float) -> None:
    shape = waves.osc_shape(waveform, pw)
    integral, mean = waves.osc_integral(waveform, pw)
    numeric = np.concatenate([[0.0], np.cumsum(shape - shape.mean())[:-1] / waves.TABLE_SIZE])
    assert mean == pytest.approx(shape.mean(), abs=1e-3)
    assert np.abs(integral - numeric).max() < 2.0 / waves.TABLE_SIZE
    assert abs(integral[-1]) < 2.0 / waves.TABLE_SIZE  # F wraps to 0: no correction at the wrap


def test_saw_shape_goes_from_triangle_to_saw() -> None:
    tri, saw = waves.saw(0.0), waves.saw(1.0)
    assert tri.max() == pytest.approx(1.0, abs=1e-3) and tri[waves.TABLE_SIZE // 4] == pytest.approx(1.0)
    assert saw[waves.TABLE_SIZE // 2 - 1] == pytest.approx(1.0, abs=1e-3)  # rises to +1 at half way
    assert saw[waves.TABLE_SIZE // 2 + 1] == pytest.approx(-1.0, abs=1e-3)  # then jumps to -1


# -- pitch -------------------------------------------------------------------------------------


def test_sine_at_midi_69_is_440_hz() -> None:
    assert f0(left(render(**SINE))) == pytest.approx(440.0, rel=0.01)


@pytest.mark.parametrize(
    "values,ratio",
    [
        ({"osc2_range": 1}, 2.0),
        ({"osc2_range": -2}, 0.25),
        ({"osc2_pitch": 7}, 2 ** (7 / 12)),
        ({"osc2_pitch": -12}, 0.5),
        ({"osc2_detune": 1.0}, 1.25),
        ({"osc2_detune": -0.5}, 1.25**-0.5),
    ],
)
def test_osc2_range_pitch_and_detune(values: dict[str, float], ratio: float) -> None:
    a = render(**{**SINE, "osc_mix": 1.0, **values})
    assert f0(left(a)) == pytest.approx(440.0 * ratio, rel=0.005)


def test_pulse_width_sets_the_duty_cycle() -> None:
    # A pulse of duty d has no harmonic at k = 1/(1 - d): duty 0.75 (pw 0.5) loses the 4th.
    a = left(render(**{**SINE, "osc1_waveform": 1, "osc1_pulsewidth": 0.5}, notes=((0.0, None, 45, 100),)))
    f, mag = spectrum(a)
    h = [mag[np.argmin(abs(f - k * 110.0))] for k in (1, 2, 3, 4, 5)]
    assert h[3] < 0.05 * h[0] and h[1] > 0.2 * h[0]


# -- envelopes ---------------------------------------------------------------------------------


def test_note_off_releases_to_silence_after_the_release_time() -> None:
    release = 0.6  # bank units: 0.6**3 + 0.0005 = 0.2165 s
    a = left(render(1.0, ((0.0, 0.3, 60, 100),), amp_release=release), start=0.0)
    t_release = params.spec("amp_release").control_value(release)
    env = rms_env(a)
    held = env[int(0.25 * SR / 240)]
    assert env[int((0.3 + t_release / 2) * SR / 240)] > 0.2 * held  # still sounding half way
    assert np.abs(a[int((0.3 + t_release + 0.03) * SR) :]).max() < 1e-6  # silent after it


def test_velocity_zero_is_a_note_off() -> None:
    a = left(render(0.8, ((0.0, None, 60, 100), (0.3, None, 60, 0))), start=0.0)
    assert np.abs(a[int(0.35 * SR) :]).max() < 1e-6
    assert np.abs(a[int(0.2 * SR) : int(0.29 * SR)]).max() > 0.01


def test_attack_time_follows_the_control_value() -> None:
    attack = 0.8  # 0.512 s
    seconds = params.spec("amp_attack").control_value(attack)
    a = left(render(1.2, **SINE, amp_attack=attack), start=0.0)
    env = rms_env(a, hop=480)
    top = env[int(0.9 * SR / 480) :].mean()
    t90 = np.argmax(env > 0.9 * top) * 480 / SR
    assert t90 == pytest.approx(0.9 * seconds, abs=0.03)  # linear attack: 90% at 90% of it


def test_decay_and_sustain() -> None:
    full = rms_env(left(render(1.2, **SINE), start=0.0), hop=480)
    a = rms_env(left(render(1.2, **SINE, amp_decay=0.7, amp_sustain=0.25), start=0.0), hop=480)  # 0.343 s
    at = lambda t: int(t * SR / 480)  # noqa: E731
    assert a[at(0.17)] / full[at(0.17)] == pytest.approx(1 - 0.75 * 0.17 / 0.3435, abs=0.05)  # linear decay
    assert a[at(1.0)] / full[at(1.0)] == pytest.approx(0.25, rel=0.02)


# -- filter ------------------------------------------------------------------------------------


def test_cutoff_sweep_lowers_the_centroid_monotonically() -> None:
    cents = [centroid(left(render(filter_cutoff=c, notes=((0.0, None, 48, 100),)))) for c in
             (1.2, 0.8, 0.4, 0.0, -0.4)]
    assert all(a > b for a, b in itertools.pairwise(cents)), cents


def test_resonance_raises_a_peak_near_the_cutoff() -> None:
    # cutoff = 16**0.5 * f (key tracking) * velocity blend: f = 110 Hz, vel 100/127
    cutoff = 4 * 110.0 * (100 / 127)
    flat = left(render(filter_cutoff=0.5, filter_resonance=0.0, notes=((0.0, None, 45, 100),)))
    peaky = left(render(filter_cutoff=0.5, filter_resonance=0.9, notes=((0.0, None, 45, 100),)))
    gain_at = band_db(peaky, 0.8 * cutoff, 1.25 * cutoff) - band_db(flat, 0.8 * cutoff, 1.25 * cutoff)
    gain_low = band_db(peaky, 90, 130) - band_db(flat, 90, 130)
    assert gain_at > gain_low + 10


@pytest.mark.parametrize("filter_type", [0, 1, 2, 3, 4])
def test_filter_types_shape_the_spectrum(filter_type: int) -> None:
    # White noise through a 2 kHz filter: compare energy below, at and above the cutoff.
    cutoff = 16**0.5 * 261.626  # key tracking off: 16**cutoff * middle C
    a = left(render(osc1_waveform=3, osc2_waveform=3, filter_type=filter_type, filter_kbd_track=0.0,
                    filter_vel_sens=0.0, filter_cutoff=0.5, filter_resonance=0.3, filter_slope=1))
    low = band_db(a, 100, cutoff / 4)
    mid = band_db(a, cutoff / 1.1, cutoff * 1.1)
    high = band_db(a, cutoff * 4, cutoff * 8)
    if filter_type == 0:  # low-pass
        assert low > high + 30
    elif filter_type == 1:  # high-pass
        assert high > low + 30
    elif filter_type == 2:  # band-pass
        assert mid > low + 10 and mid > high + 10
    elif filter_type == 3:  # notch: a dip at the cutoff, flat elsewhere
        assert abs(low - high) < 3 and mid < low - 6
    else:  # bypass: flat
        assert abs(low - high) < 3 and abs(mid - low) < 3


def test_24db_slope_is_steeper_than_12db() -> None:
    def above(slope: int) -> float:
        a = left(render(osc1_waveform=3, osc2_waveform=3, filter_kbd_track=0.0, filter_vel_sens=0.0,
                        filter_cutoff=0.5, filter_slope=slope))
        return band_db(a, 4000, 8000) - band_db(a, 200, 400)

    assert above(1) < above(0) - 15  # ~2 octaves above: 12 dB/oct more per octave


def test_filter_envelope_opens_the_filter() -> None:
    # positive amount: cutoff += f * env * amount; the attack sweeps the cutoff up
    a = left(render(1.0, filter_cutoff=-0.5, filter_env_amount=16, filter_attack=0.8, filter_sustain=1.0,
                    notes=((0.0, None, 48, 100),)), start=0.0)
    assert centroid(a[int(0.05 * SR) : int(0.15 * SR)]) < 0.5 * centroid(a[int(0.7 * SR) : int(0.9 * SR)])


# -- LFO ---------------------------------------------------------------------------------------


def test_lfo_to_amp_modulates_at_the_lfo_rate() -> None:
    lfo = 2.0  # 4 Hz
    a = left(render(2.2, **SINE, lfo_freq=lfo, amp_mod_amount=1.0), start=0.2)
    env = rms_env(a, hop=480)  # 100 Hz envelope rate
    spec = np.abs(np.fft.rfft(env - env.mean()))
    freqs = np.fft.rfftfreq(len(env), 480 / SR)
    assert freqs[np.argmax(spec)] == pytest.approx(lfo**2, abs=0.3)
    assert env.min() < 0.2 * env.max()  # full depth: (lfo*0.5 + 0.5) swings to 0


def test_table_phases_stay_in_range_under_deep_vibrato() -> None:
    """pyo's OscTrig wraps its phase input once: outside [0, 1) it reads past the table's end.

    That read returned heap garbage (NaN in ~3% of renders of this very patch) before the
    input was wrapped; checking the input itself makes the test deterministic.
    """
    values = patch(**{**SINE, "osc_mix": 1.0}, lfo_freq=2.0, freq_mod_amount=1.2, osc2_pitch=12.0)
    with OfflineRenderer(SR, 256, 2) as r:
        synth = PatchSynth(polyphony=2, sample_rate=SR)
        synth.set_patch(values)
        v = synth.voices[0]
        cap = r.capture(v.ph2_phase, 1.0)
        out = r.capture(synth.output, 1.0)
        synth.note_on(69, 100)
        for _ in range(round(SR / 256)):
            r.process_block()
        phase, audio = cap.array()[:, 0], out.array()
        cap.stop()
        out.stop()
        synth.close()
        del synth, v, cap, out
    assert phase.min() >= 0.0 and phase.max() < 1.0
    assert np.ptp(phase) > 0.005  # it moved with the vibrato (the test saw the live signal)
    assert np.isfinite(audio).all()


def test_lfo_to_pitch_gives_vibrato() -> None:
    a = left(render(2.2, **SINE, lfo_freq=2.0, freq_mod_amount=1.05), start=0.2)  # 4 Hz
    depth = params.spec("freq_mod_amount").control_value(1.05) / 2 + 0.5  # f * (1 + depth * lfo)
    zc = np.flatnonzero((a[:-1] < 0) & (a[1:] >= 0))  # period from zero crossings
    inst = SR / np.diff(zc)
    assert inst.max() == pytest.approx(440 * (1 + depth), rel=0.03)
    assert inst.min() == pytest.approx(440 * (1 - depth), rel=0.03)
    still = left(render(1.0, **SINE))
    zc = np.flatnonzero((still[:-1] < 0) & (still[1:] >= 0))
    assert np.ptp(SR / np.diff(zc)) < 5


def test_lfo_to_filter_moves_the_cutoff() -> None:
    a = left(render(2.2, filter_cutoff=0.3, lfo_freq=1.0, lfo_waveform=0, filter_mod_amount=1.0,
                    notes=((0.0, None, 48, 100),)), start=0.2)  # 1 Hz
    cents = [centroid(a[i : i + 2400]) for i in range(0, len(a) - 2400, 2400)]
    assert max(cents) > 2 * min(cents)


def test_lfo_waveforms_differ() -> None:
    envs = []
    for w in range(7):
        a = left(render(1.2, **SINE, lfo_freq=1.5, lfo_waveform=w, amp_mod_amount=1.0), start=0.1)
        envs.append(rms_env(a, hop=240))
    for i in range(7):
        for j in range(i + 1, 7):
            assert np.abs(envs[i] - envs[j]).mean() > 0.03 * envs[i].mean(), (i, j)


# -- oscillator interplay --------------------------------------------------------------------


def test_hard_sync_changes_the_spectrum_but_not_the_pitch() -> None:
    free = left(render(osc1_waveform=2, osc2_waveform=2, osc_mix=1.0, osc2_pitch=7, filter_type=4))
    synced = left(render(osc1_waveform=2, osc2_waveform=2, osc_mix=1.0, osc2_pitch=7, filter_type=4,
                         osc2_sync=1))
    f, m_free = spectrum(free)
    _, m_sync = spectrum(synced)
    at = lambda m, hz: m[np.argmin(abs(f - hz))]  # noqa: E731
    assert at(m_sync, 440.0) > 10 * at(m_free, 440.0)  # synced: periodic at osc1's 440 Hz
    assert at(m_free, 440 * 2 ** (7 / 12)) > 10 * at(m_sync, 440 * 2 ** (7 / 12))


def test_sync_needs_osc1_sine_or_saw() -> None:
    # amSynth only syncs when osc1 is a sine or saw; with a pulse osc1 the flag is inert
    base = {"osc1_waveform": 1, "osc2_waveform": 2, "osc_mix": 1.0, "osc2_pitch": 7, "filter_type": 4}
    a, b = left(render(**base)), left(render(**base, osc2_sync=1))
    assert np.abs(a - b).max() < 1e-6


def test_ring_modulation_gives_sum_and_difference() -> None:
    ring = {**SINE, "osc_mix": 0.0, "osc_mix_mode": 1.0, "osc2_pitch": 7}
    a = left(render(**ring, notes=((0.0, None, 57, 100),)))
    f, mag = spectrum(a)
    f1, f2 = 220.0, 220.0 * 2 ** (7 / 12)
    at = lambda hz: mag[np.argmin(abs(f - hz))]  # noqa: E731
    assert at(f2 - f1) > 20 * at(f1) and at(f1 + f2) > 20 * at(f2)


def test_osc_mix_crossfades_the_oscillators() -> None:
    def levels(mix: float) -> tuple[float, float]:
        a = left(render(**{**SINE, "osc_mix": mix, "osc2_pitch": 7}, notes=((0.0, None, 57, 100),)))
        f, mag = spectrum(a)
        return mag[np.argmin(abs(f - 220))], mag[np.argmin(abs(f - 220 * 2 ** (7 / 12)))]

    (a1, a2), (b1, b2), (c1, c2) = levels(-1), levels(0), levels(1)
    assert a2 < 0.01 * a1 and c1 < 0.01 * c2
    assert b1 == pytest.approx(a1 / 2, rel=0.05) and b2 == pytest.approx(c2 / 2, rel=0.05)


def test_noise_and_sample_and_hold_waveforms() -> None:
    noise = left(render(osc1_waveform=3, osc_mix=-1.0, filter_type=4))
    sh = left(render(osc1_waveform=4, osc_mix=-1.0, filter_type=4, notes=((0.0, None, 45, 100),)))
    assert centroid(noise) > 8000  # white
    # a new random value once per period of the note (110 Hz), held in between
    steps = np.flatnonzero(np.abs(np.diff(sh)) > 1e-6)
    assert len(steps) == pytest.approx(len(sh) / SR * 110, rel=0.05)
