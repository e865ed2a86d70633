"""The live input (issue 16): a WAV file played as the input, its pitch and level followed by a voice.

A sawtooth phrase is written as a WAV in each test (a held 220 Hz with vibrato, a silence, an
octave glide), played through ``render`` (an ``input:`` score) and through the live server
(``serve --input``, recorded), and the output is measured: its pitch by a YIN of our own in numpy (not the
server's pyo tracker), its level by RMS. The claims and their tolerances:

* pitch: the output's f0 within 25 cents of the input's on >= 95% of voiced frames, after
  removing the delay that fits best (the issue's figure); the delay itself under 60 ms;
* level: the voice has the input's RMS level (each frame's harmonics and noise scaled to RMS 1,
  times the tracked RMS, whose ripple is a few percent: within 1 dB), in both channels alike, and
  a gain in dB moves it by that many dB (0.5 dB);
* silence: under the gate, and once the input stops, the output is silent (peak < 1e-6: nothing
  at all sounds), not hiss;
* bad values and files: ``/fail`` or one line naming what is wrong, no traceback.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import soundfile

from timbrespace import config
from timbrespace.bench_input import follows, phrase, yin
from timbrespace.input_file import InputFileError, load_input
from timbrespace.link.input import InputSettings, InputShared
from timbrespace.render import ScoreInput, parse_score, render_score

from conftest import read_wav, shipped_timbre_config, start_server, write_config

pytestmark = pytest.mark.numeric

SR = 48000
F64 = npt.NDArray[np.float64]
HOLD_S, GAP_S, GLIDE_S = 0.8, 0.2, 1.2  # the phrase: a held note with vibrato, silence, an octave glide


def write_phrase(path: Path, sr: int = SR, amplitude: float = 0.3) -> tuple[F64, F64]:
    f0, x = phrase(sr, amplitude)
    soundfile.write(str(path), x, sr, subtype="PCM_16")
    return f0, x


def rms(x: F64) -> float:
    return float(np.sqrt(np.mean(x**2)))


@pytest.fixture(scope="module")
def cfg(tmp_path_factory: pytest.TempPathFactory) -> config.Config:
    return shipped_timbre_config(tmp_path_factory.mktemp("input"))


def render(cfg: config.Config, wav: Path | None, events: list[tuple[float, str, Any]], duration: float,
           ) -> tuple[F64, list[str]]:
    score = parse_score({"events": [{"time": t, "address": a, "args": list(args)} for t, a, *args in events],
                         "duration": duration})
    if wav is not None:
        score.input = ScoreInput(wav)
    result = render_score(cfg, score)
    a = result.audio
    assert np.isfinite(a).all() and np.abs(a).max() < 1.0
    assert np.array_equal(a[:, 0], a[:, 1])  # centred: harmonics and noise in both channels
    return np.asarray(a[:, 0], dtype=np.float64), result.failures


def test_settings_cross_in_their_seqlock_slot_and_tracking_comes_back() -> None:
    shared = InputShared()
    assert shared.take() is None  # nothing published yet
    s = InputSettings(on=True, gain_db=-6.0, transpose=7.0, dry=0.5, gate_db=-40.0)
    shared.put(s)
    assert shared.take() == s and shared.take() is None  # taken once
    shared.track(220.0, 0.1, True, 1.5)
    tr = shared.tracked()
    assert (tr.f0, tr.level, tr.voiced, tr.position) == (220.0, 0.1, True, 1.5)


def test_the_ring_keeps_the_inputs_latest_samples_across_its_wrap() -> None:
    from timbrespace.link.input import RING

    shared = InputShared()
    assert np.array_equal(shared.latest(4), np.zeros(4, np.float32))  # nothing yet: zeros
    x = np.arange(RING + 1000, dtype=np.float32)
    for i in range(0, len(x), 300):
        shared.append(x[i : i + 300])
    assert np.array_equal(shared.latest(5000), x[-5000:])


def test_the_audio_side_shares_the_input_after_its_gain() -> None:
    # What the control side encodes for /input/alpha is the input itself, sample for sample.
    from timbrespace.audio.live_input import LiveInput
    from timbrespace.audio.offline import OfflineRenderer
    from timbrespace.link.frames import FrameSlots
    from timbrespace.link.input import RING, InputPlan

    _, x = phrase()
    x = x.astype(np.float32)
    shared = InputShared()
    blocks = (RING + 20000) // 256  # past the ring's wrap
    with OfflineRenderer(SR, 256, 2) as r:
        live = LiveInput(InputPlan(x, SR, True, (200.0, 800.0, 3200.0), 4096), shared, FrameSlots(1, 4096, 3),
                         SR, 256)
        shared.put(InputSettings(on=True, gain_db=-6.0))
        for _ in range(blocks + 1):  # the last call shares the block before it
            live.block()
            r.process_block()
        got = shared.latest(24000)
        live.close()
    played = np.tile(x, 1 + blocks * 256 // len(x))[: blocks * 256]
    gain = np.float32(10 ** (-6.0 / 20))
    # The gain's 20 ms ramp from 1 is long over; the table reader repeats the file sample for sample.
    assert np.allclose(got, played[-24000:] * gain, atol=1e-6)


def test_input_files_are_read_resampled_or_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match=r"missing\.wav: no such file"):
        load_input(tmp_path / "missing.wav", SR)
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF not really a wave file")
    with pytest.raises(InputFileError, match=r"junk\.wav: not a readable sound file"):
        load_input(junk, SR)
    slow = tmp_path / "slow.wav"
    soundfile.write(str(slow), np.zeros(4000), 4000)
    with pytest.raises(InputFileError, match=r"slow\.wav: sample rate 4000 Hz is outside 8000\.\.192000"):
        load_input(slow, SR)
    # 44.1 kHz stereo: mixed to mono and resampled, the pitch kept (a sine's FFT peak, within 1 cent)
    t = np.arange(44100) / 44100
    tone = 0.5 * np.sin(2 * np.pi * 440.0 * t)
    soundfile.write(str(tmp_path / "cd.wav"), np.stack([tone, tone], axis=1), 44100, subtype="FLOAT")
    x = load_input(tmp_path / "cd.wav", SR).astype(np.float64)
    assert len(x) == SR
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x)), 8 * len(x)))
    k = int(np.argmax(spec))
    a, b, c = np.log(spec[k - 1 : k + 2])
    peak = (k + 0.5 * (a - c) / (a - 2 * b + c)) * SR / (8 * len(x))
    assert abs(1200 * np.log2(peak / 440.0)) < 1.0


def test_render_the_voice_follows_a_vibrato_and_a_glide_and_the_gain(cfg: config.Config, tmp_path: Path) -> None:
    wav = tmp_path / "phrase.wav"
    truth, x = write_phrase(wav)
    y, failures = render(cfg, wav, [(0.0, "/input/target", "trumpet"), (0.0, "/input", 1),
                                    (0.45, "/input/gain", -12.0)], 2.4)
    assert not failures
    share, median, delay = follows(y, truth)
    assert share >= 0.95, (share, median, delay)
    assert median < 10.0 and delay < 0.06
    # Level: the input's RMS before the gain change; -12 dB after it (the vibrato keeps the level).
    before, after = slice(int(0.15 * SR), int(0.4 * SR)), slice(int(0.55 * SR), int(0.78 * SR))
    assert abs(20 * np.log10(rms(y[before]) / rms(x[before]))) < 1.0
    change = 20 * np.log10(rms(y[after]) / rms(y[before]))
    assert change == pytest.approx(-12.0, abs=0.5)
    # The gap: silent from 100 ms after the input stops until it starts again (no hiss).
    gap = y[int((HOLD_S + 0.1) * SR) : int((HOLD_S + GAP_S) * SR)]
    assert np.abs(gap).max() < 1e-6


def test_render_gate_transpose_off_and_bad_values(cfg: config.Config, tmp_path: Path) -> None:
    wav = tmp_path / "phrase.wav"
    write_phrase(wav)
    # -65 dBFS in (the saw's -15 dBFS at -50 dB gain) under a -50 dB gate: silence; then up a fifth.
    y, failures = render(cfg, wav, [(0.0, "/input/gain", -50.0), (0.0, "/input", 1), (0.4, "/input/gain", 0.0),
                                    (0.0, "/input/transpose", 7.0), (0.0, "/input/target", "flute"),
                                    (0.5, "/input/gain", 40.0), (0.5, "/input/target", "tuba"),
                                    (0.5, "/input/gate", 3.0), (1.5, "/input", 0)], 1.8)
    assert np.abs(y[: int(0.4 * SR)]).max() < 1e-6
    _, f = yin(y[int(0.5 * SR) : int(0.78 * SR)])
    voiced = np.isfinite(f)
    assert voiced.mean() > 0.9
    fifth = 220.0 * 2 ** (7 / 12)
    assert abs(np.median(1200 * np.log2(f[voiced] / fifth))) < 25.0
    assert np.abs(y[int(1.55 * SR) :]).max() < 1e-6  # off: silent at once (after the 20 ms of the fade)
    assert len(failures) == 3
    assert "/input/gain" in failures[0] and "40" in failures[0] and "[-60, 24]" in failures[0]
    assert "/input/target" in failures[1] and "unknown instrument 'tuba'" in failures[1]
    assert "/input/gate" in failures[2] and "[-120, 0]" in failures[2]


def harmonics_db(y: F64, f0: float) -> F64:
    """The first 12 harmonics' peak levels (dB) relative to the strongest, over a held stretch."""
    n = len(y)
    spec = np.abs(np.fft.rfft(y * np.hanning(n)))
    levels = np.array([spec[round(k * f0 * n / SR) - 3 : round(k * f0 * n / SR) + 4].max() for k in range(1, 13)])
    return np.asarray(20 * np.log10(levels / levels.max() + 1e-12))


def test_alpha_moves_from_the_inputs_own_timbre_to_the_targets(cfg: config.Config, tmp_path: Path) -> None:
    # A steady 220 Hz saw: at alpha 0 the voice is decoded from the input's encoded timbre, so two
    # targets sound alike; at alpha 1 each sounds as its own instrument, and they differ.
    wav = tmp_path / "saw.wav"
    t = np.arange(int(1.6 * SR)) / SR
    soundfile.write(str(wav), 0.3 * 2 * ((220.0 * t) % 1.0 - 0.5), SR, subtype="PCM_16")
    held = slice(int(1.0 * SR), int(1.5 * SR))  # after the input's first half second was encoded
    profiles = {}
    for target in ("flute", "cello"):
        for alpha in (0.0, 1.0):
            y, failures = render(cfg, wav, [(0.0, "/input/target", target), (0.0, "/input/alpha", alpha),
                                            (0.0, "/input", 1)], 1.6)
            assert not failures
            profiles[target, alpha] = harmonics_db(y[held], 220.0)
    same = profiles["flute", 0.0] - profiles["cello", 0.0]
    apart = profiles["flute", 1.0] - profiles["cello", 1.0]
    assert np.sqrt(np.mean(same**2)) < 0.5
    assert np.sqrt(np.mean(apart**2)) > 3.0


def test_transfer_phrase_follows_a_whole_phrase(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # `timbrespace transfer --phrase`: the live path offline, written as a WAV at the server's rate.
    from timbrespace.cli import main

    wav, out = tmp_path / "phrase.wav", tmp_path / "out.wav"
    truth, _ = write_phrase(wav)
    assert main(["transfer", str(wav), "--phrase", "--target", "cello", "--alpha", "1", "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    y = read_wav(out)[:, 0]
    share, median, _ = follows(y, truth)
    assert share >= 0.95 and median < 10.0, (share, median)
    assert main(["transfer", str(wav), "--phrase", "--target", "cello", "--pitch", "57", "--out", str(out)]) == 2
    assert "--pitch is a single note's" in capsys.readouterr().err


def test_without_an_input_the_addresses_say_so_and_nothing_sounds(cfg: config.Config) -> None:
    y, failures = render(cfg, None, [(0.0, "/input", 1), (0.0, "/input/alpha", 0.5)], 0.3)
    assert len(failures) == 2 and all("no live input" in f and "--input FILE.wav" in f for f in failures)
    assert np.abs(y).max() == 0.0


def test_the_input_path_off_runs_no_pyo_object(cfg: config.Config, tmp_path: Path) -> None:
    from timbrespace.audio.live_input import LiveInput
    from timbrespace.audio.offline import OfflineRenderer
    from timbrespace.link.frames import FrameSlots
    from timbrespace.link.input import InputPlan

    _, x = phrase()
    plan = InputPlan(x.astype(np.float32), SR, False, (200.0, 800.0, 3200.0), 4096)
    shared = InputShared()
    with OfflineRenderer(SR, 256, 2) as r:
        live = LiveInput(plan, shared, FrameSlots(1, 4096, 3), SR, 256)
        cap = r.capture(live.output, 0.1)
        for _ in range(10):
            live.block()
            r.process_block()
        assert not live.on
        assert not any(o.isPlaying() for o in [*live._objects, *live.pitch.yins]) and not live.noise.playing
        assert np.abs(cap.array()).max() == 0.0
        shared.put(InputSettings(on=True))
        live.block()
        assert all(o.isPlaying() for o in live._objects)
        live.close()


@pytest.mark.parametrize("trackers", [1, 2, 4])
def test_any_number_of_trackers_finds_the_pitch(trackers: int) -> None:
    # One tracker is heard without a selector (pyo's Selector with one input crashes the process).
    from timbrespace.audio.live_input import LiveInput
    from timbrespace.audio.offline import OfflineRenderer
    from timbrespace.link.frames import FrameSlots
    from timbrespace.link.input import InputPlan

    _, x = phrase()
    shared = InputShared()
    with OfflineRenderer(SR, 256, 2) as r:
        live = LiveInput(InputPlan(x.astype(np.float32), SR, False, (200.0, 800.0, 3200.0), 4096, 21.3, trackers),
                         shared, FrameSlots(1, 4096, 3), SR, 256)
        shared.put(InputSettings(on=True))
        for _ in range(int(0.3 * SR / 256)):
            live.block()
            r.process_block()
        tr = shared.tracked()
        live.close()
    assert tr.voiced and abs(1200 * np.log2(tr.f0 / 220.0)) < 35.0  # on the vibrato's +-30 cents


@pytest.mark.parametrize("onset", ["sound", "pitch"])
def test_new_notes_sound_at_once_or_only_at_their_pitch(onset: str) -> None:
    # Sawtooth notes of 250 ms, 400 ms apart, at pitches far from each other; measured on the voice's
    # own oscillator and amplitude. sound: heard within 3 ms (the RMS follower's rise), at the
    # previous note's pitch until the trackers have a window of the new one; pitch: silent until
    # then, so never off pitch beyond the 1 ms glide. Either way the pitch is right within two
    # windows (42.7 ms) of the onset.
    from timbrespace.audio.live_input import LiveInput
    from timbrespace.audio.offline import OfflineRenderer
    from timbrespace.link.frames import FrameSlots
    from timbrespace.link.input import InputPlan

    pitches = [220.0, 330.0, 262.0, 392.0, 247.0, 294.0, 349.0, 233.0]
    x = np.zeros(int(0.4 * SR * len(pitches)) + SR // 10, np.float32)
    for i, f in enumerate(pitches):
        start, n = int((0.05 + 0.4 * i) * SR), int(0.25 * SR)
        x[start : start + n] = 0.3 * 2 * ((f * np.arange(n) / SR) % 1.0 - 0.5)
    shared = InputShared()
    with OfflineRenderer(SR, 256, 2) as r:
        live = LiveInput(InputPlan(x, SR, False, (200.0, 800.0, 3200.0), 4096, 21.3, 4, onset), shared,
                         FrameSlots(1, 4096, 3), SR, 256)
        f0_cap, amp_cap = r.capture(live.f0, len(x) / SR), r.capture(live.amp, len(x) / SR)
        shared.put(InputSettings(on=True))
        for _ in range(len(x) // 256):
            live.block()
            r.process_block()
        f0, amp = f0_cap.array()[:, 0].astype(np.float64), amp_cap.array()[:, 0].astype(np.float64)
        live.close()
    level = rms(x[int(0.1 * SR) : int(0.25 * SR)].astype(np.float64))
    for i, f in enumerate(pitches[1:], 1):  # the first note finds the trackers empty
        note = slice(int((0.05 + 0.4 * i) * SR), int((0.05 + 0.4 * i + 0.15) * SR))
        off = np.abs(1200 * np.log2(np.maximum(f0[note], 1.0) / f)) > 25.0
        heard = amp[note] > 0.1 * level  # -20 dB
        settled = (np.flatnonzero(off)[-1] + 1) / SR if off.any() else 0.0
        assert settled < 2 * 1024 / SR, (f, settled)
        if onset == "sound":
            assert np.argmax(heard) / SR < 0.003, f
        else:
            assert np.sum(off & (amp[note] > 0.01 * level)) / SR <= 0.002, f


def test_live_server_plays_the_input_file_and_follows_it(tmp_path: Path) -> None:
    wav = tmp_path / "phrase.wav"
    truth, _ = write_phrase(wav, sr=44100)  # resampled to the server's 48 kHz
    truth = np.interp(np.arange(int(len(truth) * SR / 44100)) / SR, np.arange(len(truth)) / 44100, truth)
    out = tmp_path / "take.wav"
    s = start_server(tmp_path, "--input", str(wav), "--record", str(out))
    try:
        c = s.client()
        st = c.status()
        assert st["input_level_db"] == -120.0 and st["input_f0"] == 0.0  # off
        c.send("/input/target", "trumpet")
        c.send("/input/gain", 99.0)
        fail = c.expect("/fail")
        assert fail.params[0] == "/input/gain" and "[-60, 24]" in fail.params[1]
        c.send("/input", 1)
        st = c.status_until(lambda st: abs(st["input_f0"] - 220.0) < 10.0)
        assert -30.0 < st["input_level_db"] < -5.0
        time.sleep(HOLD_S + GAP_S + GLIDE_S + 0.3)
        c.close()
    finally:
        assert s.stop(signal.SIGTERM) == 0
    y = read_wav(out)[:, 0]
    onset = int(np.argmax(np.abs(y) > 0.01)) / SR  # the output starts within a few blocks of the input
    share, median, delay = follows(y, truth, start=onset - 0.06, delays=np.arange(0.0, 0.1205, 0.0025))
    assert share >= 0.95, (share, median, delay)
    # Silent while the input is: from 100 ms after the held note stops until the glide. The output's
    # onset follows the input's by up to a tracker window and two blocks (a path just turned on
    # sounds once its first estimate lands) and a control tick (its first frame is decoded at the
    # next one, a model frame of 11.6 ms at most, after the trackers report it voiced; the voice's
    # table is silent until then): 44 ms before the glide at the latest.
    lag = (1024 + 2 * 256) / SR + 0.0116
    gap = y[int((onset + HOLD_S + 0.1) * SR) : int((onset - lag + HOLD_S + GAP_S) * SR)]
    assert np.abs(gap).max() < 1e-6


def serve(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "timbrespace", "serve", *args], capture_output=True, text=True,
                          timeout=120)


def test_serve_refuses_an_input_it_cannot_play(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    slow = tmp_path / "slow.wav"
    soundfile.write(str(slow), np.zeros(4000), 4000)
    for path, why in ((tmp_path / "none.wav", "no such file"), (slow, "sample rate 4000 Hz is outside")):
        r = serve("--config", str(cfg), "--input", str(path))
        assert r.returncode == 2, r.stdout + r.stderr
        assert f"input {path}: {why}" in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = serve("--config", str(cfg), "--input-loop")
    assert r.returncode == 2 and "--input-loop: give the file with --input FILE.wav" in r.stderr, r.stderr
    wav = tmp_path / "phrase.wav"
    write_phrase(wav)
    no_timbre = write_config(tmp_path, timbre={"enabled": False})
    r = serve("--config", str(no_timbre), "--input", str(wav))
    assert r.returncode == 2 and "the live input needs the timbre engine" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_scores_name_their_input_relative_to_the_score(tmp_path: Path) -> None:
    from timbrespace.render import ScoreError, load_score

    score = tmp_path / "score.yaml"
    score.write_text("input: {file: takes/a.wav, loop: true}\nevents: []\n")
    loaded = load_score(score)
    assert loaded.input == ScoreInput(tmp_path / "takes" / "a.wav", True)
    for bad in ({"file": ""}, {"file": "a.wav", "loop": "yes"}, {"path": "a.wav"}, 3):
        with pytest.raises(ScoreError, match=r"score: input: expected a WAV file's path or \{file: PATH"):
            parse_score({"input": bad, "events": []})
