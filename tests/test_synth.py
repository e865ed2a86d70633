"""The polyphonic synth: voices, keyboard modes, effects, patch changes, costs, offline renderer.

Real pyo renders, numeric checks.  The last test compares with amSynth 1.13 itself when
its DSSI plugin is installed (Debian's ``amsynth`` package), through ``fidelity.reference``.
"""

from __future__ import annotations

import glob
import os
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("PYO_GUI_WX", "0")

import numpy as np
import numpy.typing as npt
import pytest

from timbrespace.audio.offline import OfflineRenderer, render_patch
from timbrespace.audio.synth import PatchSynth
from timbrespace.fidelity import reference
from timbrespace.patch import params

pytestmark = pytest.mark.numeric

SR, BS = 48000, 256
BANKS = "/usr/share/amsynth/banks"
Audio = npt.NDArray[np.float32]
IDX = params.INDEX


def patch(**values: float) -> npt.NDArray[np.float64]:
    v = params.DEFAULTS.copy()
    v[IDX["master_vol"]] = 0.3
    for name, value in values.items():
        v[IDX[name]] = value
    return v


SINE = {"osc1_waveform": 0, "osc2_waveform": 0, "osc_mix": -1.0, "filter_type": 4, "amp_vel_sens": 0.0}


def rms(x: npt.NDArray[np.floating], hop: int = 480) -> npt.NDArray[np.float64]:
    x = np.asarray(x, dtype=np.float64)
    n = len(x) // hop * hop
    return np.sqrt((x[:n].reshape(-1, hop) ** 2).mean(axis=1))


def f0(x: npt.NDArray[np.floating]) -> float:
    x = np.asarray(x, dtype=np.float64)
    mag = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    k = int(np.argmax(mag[1:])) + 1
    a, b, c = np.log(mag[k - 1 : k + 2] + 1e-12)
    return float((k + 0.5 * (a - c) / (a - 2 * b + c)) * SR / len(x))


def presets() -> list[npt.NDArray[np.float64]]:
    """amSynth's factory presets (read with the project's bank reader)."""
    from timbrespace.patch.bank import read_bank

    out: list[npt.NDArray[np.float64]] = []
    for path in sorted(glob.glob(f"{BANKS}/*")):
        out += [p.values for p in read_bank(path)]
    return out


# -- voices and keyboard modes ---------------------------------------------------------------


def test_polyphony_limit_steals_the_oldest_released_voice_first() -> None:
    with OfflineRenderer(SR, BS, 2) as r:
        s = PatchSynth(polyphony=3, sample_rate=SR)
        s.set_patch(patch(amp_release=1.5))  # 3.4 s release: released voices keep sounding
        for p in (60, 64, 67):
            s.note_on(p, 100)
        r.process_block()
        s.note_off(64)
        r.process_block()
        assert s.active_voices == 3
        s.note_on(72, 100)  # full: takes the released 64, not the older held 60
        assert sorted(v.key for v in s.voices) == [60, 67, 72]
        s.note_on(76, 100)  # none released: takes the oldest, 60
        assert sorted(v.key for v in s.voices) == [67, 72, 76]
        s.note_on(72, 90)  # a sounding key retriggers its own voice
        assert sorted(v.key for v in s.voices) == [67, 72, 76]
        s.close()


def test_voices_park_when_their_release_ends() -> None:
    with OfflineRenderer(SR, BS, 2) as r:
        s = PatchSynth(polyphony=4, sample_rate=SR)
        s.set_patch(patch(amp_release=0.5))  # 0.1255 s
        for p in (60, 64):
            s.note_on(p, 100)
        for _ in range(10):
            r.process_block()
        assert s.active_voices == 2
        s.note_off(60)
        s.note_off(64)
        for _ in range(20):  # 0.107 s: still releasing
            r.process_block()
        assert s.active_voices == 2
        for _ in range(10):
            r.process_block()
        assert s.active_voices == 0
        s.note_on(67, 100)
        s.all_notes_off()  # 5 ms
        for _ in range(3):
            r.process_block()
        assert s.active_voices == 0
        s.close()


def test_cut_silences_its_keys_at_once_and_the_other_keys_play_on() -> None:
    # One client's /panic: its keys go within 5 ms, whatever the patch's release; others' stay.
    with OfflineRenderer(SR, BS, 2) as r:
        s = PatchSynth(polyphony=4, sample_rate=SR)
        s.set_patch(patch(amp_release=1.5))  # 3.4 s release
        for p in (60, 64, 67):
            s.note_on(p, 100)
        r.process_block()
        s.cut((1 << 60) | (1 << 64))
        for _ in range(3):  # 16 ms
            r.process_block()
        assert s.active_voices == 1 and [v.key for v in s.voices if not v.silent] == [67]
        s.all_notes_off()
        for _ in range(3):
            r.process_block()
        # Mono: cutting the latest key falls back to the key still held, as its note-off would.
        s.set_patch(patch(amp_release=1.5, keyboard_mode=1))
        s.note_on(60, 100)
        s.note_on(64, 100)
        s.cut(1 << 64)
        for _ in range(3):
            r.process_block()
        assert s.active_voices == 1 and s.voices[0].key == 60 and s.voices[0].held
        s.cut(1 << 60)
        for _ in range(3):
            r.process_block()
        assert s.active_voices == 0
        s.close()


def test_mono_retriggers_and_legato_glides_without_retriggering() -> None:
    # A slow attack shows retriggers: mono restarts the attack from the current level, legato not.
    notes = ((0.0, 1.0, 60, 100), (0.5, 1.0, 67, 100))
    base = {**SINE, "amp_attack": 0.9, "amp_decay": 0.5, "amp_sustain": 0.2}  # 0.73 s attack
    poly = render_patch(patch(**base), notes, 0.9)[:, 0]
    mono = render_patch(patch(**base, keyboard_mode=1), notes, 0.9)[:, 0]
    legato = render_patch(patch(**base, keyboard_mode=2), notes, 0.9)[:, 0]
    w = slice(int(0.75 * SR), int(0.85 * SR))
    assert f0(mono[w]) == pytest.approx(midi(67), rel=0.01)  # one voice: only the new key
    assert f0(legato[w]) == pytest.approx(midi(67), rel=0.01)
    assert abs(f0(poly[w]) - midi(67)) > 10 or rms(poly[w]).mean() > 1.3 * rms(mono[w]).mean()
    # legato kept the envelope (past its attack, decaying to 0.2), mono attacked again (rising)
    m, g = rms(mono[w]), rms(legato[w])
    assert m[-1] > m[0] and g[-1] < 0.5 * g[0]


def midi(m: float) -> float:
    return 440.0 * 2 ** ((m - 69) / 12)


def test_portamento_glides_over_the_portamento_time() -> None:
    notes = ((0.0, 0.3, 57, 100), (0.3, None, 69, 100))
    a = render_patch(patch(**SINE, portamento_time=0.4), notes, 1.0)[:, 0].astype(np.float64)
    zc = np.flatnonzero((a[:-1] < 0) & (a[1:] >= 0))
    t, hz = zc[1:] / SR, SR / np.diff(zc)
    start = BS * round(0.3 * SR / BS) / SR  # notes land on block boundaries
    during = (t > start + 0.15) & (t < start + 0.25)
    assert np.all((hz[during] > 250) & (hz[during] < 400))  # linear in Hz: ~330 half way
    assert hz[t > start + 0.45].mean() == pytest.approx(440, rel=0.01)
    # portamento mode "legato": no glide when no other key is held
    b = render_patch(patch(**SINE, portamento_time=0.4, portamento_mode=1), notes, 1.0)[:, 0]
    assert f0(b[int(0.35 * SR) : int(0.45 * SR)]) == pytest.approx(440, rel=0.01)


def test_set_pitch_glides_the_latest_note() -> None:
    with OfflineRenderer(SR, BS, 2) as r:
        s = PatchSynth(polyphony=2, sample_rate=SR)
        s.set_patch(patch(**SINE))
        cap = r.capture(s.output, 0.5)
        s.note_on(69, 100)
        for _ in range(40):
            r.process_block()
        s.set_pitch(69.5)
        for _ in range(54):
            r.process_block()
        a = cap.array()[:, 0]
        s.close()
    assert f0(a[int(0.05 * SR) : int(0.2 * SR)]) == pytest.approx(440, rel=0.003)
    assert f0(a[int(0.3 * SR) : int(0.49 * SR)]) == pytest.approx(midi(69.5), rel=0.003)


# -- velocity, volume and effects ------------------------------------------------------------


def test_velocity_sensitivity() -> None:
    def level(sens: float, velocity: int) -> float:
        v = patch(**{**SINE, "amp_vel_sens": sens})
        return float(rms(render_patch(v, ((0.0, None, 69, velocity),), 0.4)[:, 0])[-5:].mean())

    quiet, loud, flat = level(1.0, 32), level(1.0, 127), level(0.0, 32)
    assert quiet / loud == pytest.approx(32 / 127, rel=0.02)
    assert flat == pytest.approx(loud, rel=0.02)


def test_master_volume_is_squared() -> None:
    a = rms(render_patch(patch(**SINE, master_vol=0.2), ((0.0, None, 69, 100),), 0.4)[:, 0])[-5:].mean()
    b = rms(render_patch(patch(**SINE, master_vol=0.4), ((0.0, None, 69, 100),), 0.4)[:, 0])[-5:].mean()
    assert b / a == pytest.approx(4.0, rel=0.02)


def test_distortion_adds_harmonics() -> None:
    def harmonics(crunch: float) -> float:
        v = patch(**SINE, distortion_crunch=crunch)
        x = render_patch(v, ((0.0, None, 57, 100),), 0.5)[int(0.1 * SR) :, 0]
        mag = np.abs(np.fft.rfft(x * np.hanning(len(x))))
        f = np.fft.rfftfreq(len(x), 1 / SR)
        at = lambda hz: mag[np.argmin(abs(f - hz))]  # noqa: E731
        return float(sum(at(k * 220.0) for k in (3, 5, 7)) / at(220.0))

    assert harmonics(0.0) < 0.01
    assert harmonics(0.5) > 0.2
    assert harmonics(0.9) > harmonics(0.5)


def test_reverb_extends_the_tail_and_width_spreads_it() -> None:
    notes = ((0.0, 0.2, 60, 100),)
    dry = render_patch(patch(), notes, 1.5)
    wet = render_patch(patch(reverb_wet=0.5, reverb_roomsize=0.8), notes, 1.5)
    longer = render_patch(patch(reverb_wet=0.5, reverb_roomsize=1.0), notes, 1.5)
    tail = slice(int(0.4 * SR), None)
    assert np.abs(dry[tail]).max() < 1e-6
    assert rms(wet[tail, 0]).mean() > 1e-3
    assert rms(longer[int(1.2 * SR) :, 0]).mean() > 2 * rms(wet[int(1.2 * SR) :, 0]).mean()
    narrow = render_patch(patch(reverb_wet=0.5, reverb_roomsize=0.8, reverb_width=0.0), notes, 1.5)
    assert np.corrcoef(narrow[tail].T)[0, 1] > 0.99
    assert np.corrcoef(wet[tail].T)[0, 1] < 0.6
    damped = render_patch(patch(reverb_wet=0.5, reverb_roomsize=0.8, reverb_damp=1.0), notes, 1.5)

    def highs(a: Audio) -> float:  # damping eats the tail's highs
        mag = np.abs(np.fft.rfft(a[tail, 0])) ** 2
        return float(mag[np.fft.rfftfreq(len(a[tail, 0]), 1 / SR) > 3000].sum())

    assert highs(damped) < 0.3 * highs(wet)


def test_every_parameter_is_audible() -> None:
    """Changing any one of the 41 parameters changes the sound of a patch that uses them all."""
    busy = patch(
        amp_attack=0.3, amp_decay=0.6, amp_sustain=0.6, amp_release=0.5, osc1_waveform=2, osc2_waveform=1,
        filter_attack=0.3, filter_decay=0.5, filter_sustain=0.5, filter_release=0.5, filter_resonance=0.5,
        filter_env_amount=4.0, filter_cutoff=0.4, osc2_detune=0.1, lfo_freq=2.0, lfo_waveform=0,
        osc2_range=0, osc_mix=0.0, freq_mod_amount=1.02, filter_mod_amount=0.0, amp_mod_amount=-0.5,
        osc_mix_mode=0.3, osc1_pulsewidth=0.6, osc2_pulsewidth=0.4, reverb_roomsize=0.6, reverb_damp=0.3,
        reverb_wet=0.3, reverb_width=0.5, distortion_crunch=0.3, osc2_sync=0, portamento_time=0.2,
        keyboard_mode=0, osc2_pitch=0, filter_type=0, filter_slope=1, freq_mod_osc=0, filter_kbd_track=0.5,
        filter_vel_sens=0.5, amp_vel_sens=0.5, portamento_mode=0,
    )
    notes = ((0.0, 0.4, 60, 90), (0.5, 1.0, 67, 70), (0.7, 1.0, 64, 100))  # gap, then overlap
    ref = render_patch(busy, notes, 1.3)
    other = {"amp_sustain": 0.1, "osc1_waveform": 0, "osc2_waveform": 3, "filter_type": 1, "filter_slope": 0,
             "lfo_waveform": 4, "osc2_sync": 1, "keyboard_mode": 1, "osc2_range": 1, "osc2_pitch": 5,
             "freq_mod_osc": 2, "portamento_mode": 1, "filter_env_amount": -8.0, "reverb_width": 1.0}
    quiet = []
    for i, spec in enumerate(params.PARAMS):
        v = busy.copy()
        far = spec.maximum if busy[i] < (spec.minimum + spec.maximum) / 2 else spec.minimum
        v[i] = other.get(spec.name, far)
        diff = render_patch(v, notes, 1.3) - ref
        if np.sqrt((diff**2).mean()) < 0.02 * np.sqrt((ref**2).mean()):
            quiet.append(spec.name)
    assert quiet == []


# -- patch changes ---------------------------------------------------------------------------


def test_a_patch_change_reaches_sounding_voices_within_a_block() -> None:
    with OfflineRenderer(SR, BS, 2) as r:
        s = PatchSynth(polyphony=2, sample_rate=SR)
        s.set_patch(patch(**SINE))
        s.note_on(69, 100)
        for _ in range(30):
            r.process_block()
        s.output.out()
        before = r.process_block()
        s.set_patch(patch(**SINE, master_vol=0.15))  # a quarter of the gain
        after = r.process_block()
        settled = r.process_block()
        s.close()
    peak = np.abs(before).max()
    assert np.abs(after[96:160]).max() < 0.8 * peak  # under way in the very next block (5 ms ramp)
    assert np.abs(settled[64:]).max() == pytest.approx(peak / 4, rel=0.03)


def test_switches_under_a_held_note_do_not_click() -> None:
    """Filter type/slope switches and big jumps mid-note stay as smooth as the note itself."""
    changes = [{"filter_type": 1}, {"filter_type": 2}, {"filter_type": 3}, {"filter_type": 4},
               {"filter_type": 0, "filter_slope": 0}, {"filter_cutoff": -0.5}, {"filter_cutoff": 1.5},
               {"osc_mix": 1.0}, {"amp_sustain": 0.3}, {"filter_resonance": 0.9}]
    base = {**SINE, "filter_type": 0, "filter_cutoff": 0.5, "filter_resonance": 0.2}
    with OfflineRenderer(SR, BS, 2) as r:
        s = PatchSynth(polyphony=1, sample_rate=SR)
        s.output.out()
        v = patch(**base)
        s.set_patch(v)
        s.note_on(57, 100)
        blocks = [r.process_block() for _ in range(40)]
        for change in changes:
            for name, value in change.items():
                v[IDX[name]] = value
            s.set_patch(v)
            blocks += [r.process_block() for _ in range(12)]
        s.close()
    a = np.concatenate(blocks)[:, 0].astype(np.float64)
    curvature = np.abs(np.diff(a, 2))  # a click is a spike here; a 220 Hz sine's is tiny
    steady = curvature[20 * BS : 40 * BS].max()
    assert curvature[40 * BS :].max() < 3 * steady


def test_a_switch_flickering_every_block_never_holds_the_output_down() -> None:
    with OfflineRenderer(SR, BS, 2) as r:
        s = PatchSynth(polyphony=1, sample_rate=SR)
        s.output.out()
        # every type passes a 220 Hz sine alike with a 4.2 kHz cutoff: quiet means ducked
        v = patch(**{**SINE, "filter_type": 0, "filter_cutoff": 1.0, "filter_kbd_track": 0.0})
        s.set_patch(v)
        s.note_on(57, 100)
        steady = np.abs(np.concatenate([r.process_block() for _ in range(20)])).max()
        out = []
        for k in range(40):
            v[IDX["filter_type"]] = 3 + k % 2  # notch, bypass, notch...: a new target every block
            s.set_patch(v)
            out.append(r.process_block())
        s.close()
    level = np.abs(np.concatenate(out)[:, 0]).reshape(-1, 64).max(axis=1)  # 64-sample windows
    quiet = "".join("q" if x < 0.2 * steady else "." for x in level)
    assert "q" in quiet  # the duck works...
    assert max(len(run) for run in quiet.split(".")) <= 12  # ...and never lasts more than 3 blocks


def test_bad_values_are_clamped_and_nan_ignored() -> None:
    v = patch(**SINE)
    v[IDX["filter_resonance"]] = 5.0
    v[IDX["osc2_range"]] = 2.6  # stepped: rounds to 3
    v[IDX["master_vol"]] = np.nan
    with OfflineRenderer(SR, BS, 2) as r:
        s = PatchSynth(polyphony=1, sample_rate=SR)
        s.set_patch(v)
        cap = r.capture(s.output, 0.2)
        s.note_on(60, 100)
        for _ in range(38):
            r.process_block()
        a = cap.array()
        assert s._values[IDX["filter_resonance"]] == pytest.approx(0.97)
        assert s._values[IDX["osc2_range"]] == 3.0
        # NaN: unchanged
        assert s._values[IDX["master_vol"]] == pytest.approx(params.DEFAULTS[IDX["master_vol"]])
        s.close()
    assert np.isfinite(a).all() and np.abs(a).max() > 0.01


# -- the factory presets -----------------------------------------------------------------------


def test_factory_presets_never_nan_and_never_clip() -> None:
    all_presets = presets()
    if not all_presets:
        pytest.skip("amSynth's factory banks are not installed")
    chosen = all_presets[:: max(1, len(all_presets) // 200)][:200]
    notes = ((0.0, 0.35, 48, 127), (0.0, 0.35, 60, 110), (0.05, 0.35, 67, 100), (0.05, 0.35, 76, 90))
    worst = 0.0
    with OfflineRenderer(SR, BS, 2) as r:
        s = PatchSynth(polyphony=8, sample_rate=SR)
        for v in chosen:
            s.set_patch(v)
            cap = r.capture(s.output, 0.45)
            for _, _, p, vel in notes[:2]:
                s.note_on(p, vel)
            for k in range(round(0.45 * SR / BS)):
                if k == round(0.05 * SR / BS):
                    for _, _, p, vel in notes[2:]:
                        s.note_on(p, vel)
                if k == round(0.35 * SR / BS):
                    s.all_notes_off()
                r.process_block()
            a = cap.array()
            assert np.isfinite(a).all()
            worst = max(worst, float(np.abs(a).max()))
        s.close()
    assert worst <= 1.0


def test_noise_lfo_on_a_resonant_cutoff_near_nyquist_stays_finite() -> None:
    # Noise changed the biquad's coefficients at every sample and blew it up (NaN in three
    # factory presets, e.g. BriansBank10/Thirsty); amSynth reads its LFO per 64-sample chunk.
    v = patch(lfo_waveform=3, lfo_freq=4.4, filter_mod_amount=0.92, filter_resonance=0.92, filter_type=1,
              filter_cutoff=1.49, filter_kbd_track=1.0, master_vol=0.5)
    x = render_patch(v, [(0.25 * i, 0.25 * (i + 1), p, 100) for i, p in enumerate((60, 64, 67, 72))], 1.2)
    assert np.isfinite(x).all() and np.abs(x).max() > 0.05


# -- costs ------------------------------------------------------------------------------------
# The figures are the bench's (`timbrespace bench`). These tests check what the costs rest on
# (parked voices compute nothing, an unchanged patch touches nothing) and, in CPU time, which
# waiting for a shared core does not inflate, bounds an order of magnitude from what is measured.

BLOCK_S = BS / SR


def cpu_per_call(fn: Any, n: int) -> float:
    """CPU seconds per call of ``fn``: the process's CPU clock, not the wall clock."""
    t = time.process_time()
    for _ in range(n):
        fn()
    return (time.process_time() - t) / n


def test_eight_held_voices_render_faster_than_real_time_and_parked_ones_compute_nothing() -> None:
    v = patch(osc1_waveform=2, osc2_waveform=1, filter_cutoff=0.3, filter_env_amount=4, filter_resonance=0.4,
              lfo_freq=2.0, freq_mod_amount=1.05, filter_mod_amount=0, reverb_wet=0.3, distortion_crunch=0.2)
    with OfflineRenderer(SR, BS, 2) as r:
        s = PatchSynth(polyphony=8, sample_rate=SR)
        s.set_patch(v)
        for i in range(8):
            s.note_on(48 + 3 * i, 100)
        for _ in range(10):
            r.process_block()
        assert s.active_voices == 8 and all(voice.running() > 0 for voice in s.voices)
        held = cpu_per_call(r.process_block, 200)
        s.all_notes_off()
        for _ in range(400):  # the longest release here is well under 2 s
            r.process_block()
            if s.active_voices == 0:
                break
        assert s.active_voices == 0
        assert [voice.running() for voice in s.voices] == [0] * 8  # parked voices stop every object
        s.close()
    # Twice real time in CPU: an order of magnitude under the bench's figure, yet a synth that
    # rendered its parked voices or ran far slower than amSynth would fail it.
    assert BLOCK_S / held > 2, f"8 voices took {held / BLOCK_S:.2f} blocks of CPU per block"


def test_set_patch_and_note_on_fit_in_a_block_and_an_unchanged_patch_touches_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    chosen = presets()[:60] or [patch(osc1_waveform=w % 3) for w in range(60)]
    with OfflineRenderer(SR, BS, 2) as r:
        s = PatchSynth(polyphony=8, sample_rate=SR)
        for i in range(8):
            s.note_on(48 + 3 * i, 100)
        r.process_block()
        costs = []
        for v in chosen:
            costs.append(cpu_per_call(lambda v=v: s.set_patch(v), 1))
            r.process_block()
        applied: list[object] = []
        monkeypatch.setattr(s, "_apply", applied.append)
        s.set_patch(chosen[-1].copy())
        assert applied == []  # the same values again: nothing reaches pyo
        monkeypatch.undo()
        s.all_notes_off()
        for _ in range(20):
            r.process_block()
        note_on = cpu_per_call(lambda: s.note_on(60, 100), 1)
        s.close()
    # A patch change or a note must never cost the audio a whole block (the bench has the figures).
    assert np.median(costs) < BLOCK_S and note_on < BLOCK_S


# -- the offline renderer ----------------------------------------------------------------------


def test_offline_renderer_can_run_many_times_and_captures_exactly() -> None:
    for _ in range(5):
        with OfflineRenderer(SR, BS, 2) as r:
            s = PatchSynth(polyphony=2, sample_rate=SR)
            s.set_patch(patch(**SINE))
            s.output.out()
            cap = r.capture(s.output, 20 * BS / SR)
            s.note_on(69, 100)
            blocks = np.concatenate([r.process_block() for _ in range(20)])
            captured = cap.array()
            s.close()
        # the output buffer goes through the server's gain: equal to ~1e-6
        np.testing.assert_allclose(blocks, captured, atol=1e-5)
        assert captured.shape == (20 * BS, 2) and np.abs(captured).max() > 0.05
    with OfflineRenderer(SR, BS, 2), pytest.raises(RuntimeError):
        OfflineRenderer(SR, BS, 2).__enter__()


def test_render_patch_is_deterministic() -> None:
    v = patch(osc1_waveform=3, osc2_waveform=4, lfo_waveform=4, amp_mod_amount=0.0, reverb_wet=0.4)
    a = render_patch(v, ((0.0, 0.3, 60, 100),), 0.5)
    b = render_patch(v, ((0.0, 0.3, 60, 100),), 0.5)
    assert a.dtype == np.float32 and a.shape == (24000, 2)
    np.testing.assert_array_equal(a, b)


# -- against amSynth itself -----------------------------------------------------------------


@pytest.mark.skipif(not reference.available(), reason="amSynth's DSSI plugin is not installed")
def test_matches_amsynth_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))  # the plugin writes its config dir there
    chosen = presets()[:: 173][:12]
    if not chosen:
        pytest.skip("amSynth's factory banks are not installed")
    # notes on block boundaries, so both synths see them at the same sample
    notes = ((0.0, BS * 120 / SR, 57, 100), (0.0, BS * 120 / SR, 64, 90))
    env_err, centroid_err = [], []
    for v in chosen:
        theirs = reference.render(v, notes, 1.0).mean(axis=1)
        ours = render_patch(v, notes, 1.0).mean(axis=1)[: len(theirs)]
        assert np.isfinite(ours).all() and np.isfinite(theirs).all()
        a, b = rms(ours, 2400), rms(theirs, 2400)
        loud = (a > 1e-3) | (b > 1e-3)
        env_err.append(float(np.abs(20 * np.log10((a[loud] + 1e-6) / (b[loud] + 1e-6))).mean()))
        spec = [np.abs(np.fft.rfft(x[:24000] * np.hanning(24000))) for x in (ours, theirs)]
        f = np.fft.rfftfreq(24000, 1 / SR)
        c = [float((f * m).sum() / m.sum()) for m in spec]
        centroid_err.append(abs(np.log2(c[0] / c[1])))
    assert np.median(env_err) < 1.0  # dB, RMS envelope in 50 ms windows
    assert np.median(centroid_err) < 0.1  # octaves (7%)
