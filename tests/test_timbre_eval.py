"""`timbrespace eval timbre` and `timbrespace transfer`: probes, F1, the CLI end to end (tiny model)."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from timbrespace.cli import main
from timbrespace.evaluate import pitch as crepe
from timbrespace.evaluate.timbre import Settings
from timbrespace.models.probes import fit_logistic, macro_f1, probe_f1
from timbrespace.models.timbre_features import read_wav_mono
from timbrespace.models.train_timbre import train

pytestmark = pytest.mark.numeric

SR = 22050
NAMES = ["piano", "cello", "bassoon", "french_horn"]  # the paper's transfer pairs all exist
SMALL = {"channels": 32, "hidden": 64, "dec_hidden": 64, "latent_dim": 8, "n_harmonics": 30, "n_noise": 16}


def _tone(instrument: int, pitch: float, seconds: float, rate: int, level: float = 0.3) -> np.ndarray:
    """A harmonic tone whose spectral envelope depends on the instrument (bright, hollow, dark, formant)."""
    t = np.arange(int(seconds * rate)) / rate
    f0 = 440.0 * 2 ** ((pitch - 69) / 12)
    out = np.zeros_like(t)
    for k in range(1, 30):
        if k * f0 >= rate / 2:
            break
        a = [1.0 / k, (1.0 / k) if k % 2 else 0.02 / k, 1.0 / k**2.5,
             np.exp(-0.5 * ((k * f0 - 1500.0) / 400.0) ** 2) + 0.05 / k][instrument]
        out += a * np.sin(2 * np.pi * k * f0 * t)
    env = np.minimum(t / 0.02, 1.0) * np.where(t < 1.5, 1.0, np.exp(-(t - 1.5) / 0.05))
    return level * out / np.max(np.abs(out)) * env


def _write_wav(path: Path, audio: np.ndarray, rate: int) -> bytes:
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)
    return pcm


def _tone_set(root: Path, order: list[str], pitches: range, velocities: tuple[int, ...],
              split: Callable[[int, int, int], str], soundfont: str) -> Path:
    """A manifest in the soundfont's shape of :func:`_tone` notes; ``order`` lists the instruments (the
    tones are NAMES'), ``split(instrument, pitch step, velocity)`` says each note's split."""
    notes = []
    for i, name in enumerate(NAMES):
        (root / name).mkdir()
        for j, p in enumerate(pitches):
            for v in velocities:
                rel = f"{name}/{name}_{p:03d}_v{v:03d}.wav"
                pcm = _write_wav(root / rel, _tone(i, p, 2.0, SR, 0.3 * v / 127), SR)
                notes.append({"file": rel, "instrument": name, "instrument_index": order.index(name), "pitch": p,
                              "velocity": v, "split": split(i, j, v), "sha256": hashlib.sha256(pcm).hexdigest()})
    doc = {"version": 1, "sample_rate": SR, "note_off_s": 1.5, "duration_s": 2.0, "soundfont": soundfont,
           "soundfont_sha256": hashlib.sha256(soundfont.encode()).hexdigest(), "dropped": [], "notes": notes,
           "instruments": [{"index": i, "name": n, "program": 0, "bank": 0, "low": pitches[0], "high": pitches[-1]}
                           for i, n in enumerate(order)]}
    (root / "manifest.json").write_text(json.dumps(doc))
    return root / "manifest.json"


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small manifest: 4 instruments x 8 pitches x 2 velocities."""
    return _tone_set(tmp_path_factory.mktemp("notes"), NAMES, range(55, 63), (64, 127),
                     lambda i, j, v: "valid" if (j + v + i) % 4 == 0 else "train", "synthetic")


@pytest.fixture(scope="module")
def unseen_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Notes of the same four tones at velocity 100, their instruments listed in reverse order (matched by
    name, so a mix-up of indices shows as wrong answers)."""
    return _tone_set(tmp_path_factory.mktemp("unseen"), NAMES[::-1], range(56, 61), (100,),
                     lambda i, j, v: "valid", "other.sf2")


@pytest.fixture(scope="module")
def model(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("model")
    return train(out, manifest=data, cache_dir=out / "cache", progress=False, epochs=8, batch_size=16, **SMALL)


# -- probes and F1 -------------------------------------------------------------------------------
def test_macro_f1_by_hand() -> None:
    # class 0: TP 1, FN 1 -> 2/3; class 1: TP 2, FP 1 -> 4/5; macro = mean.
    assert macro_f1([0, 0, 1, 1], [0, 1, 1, 1]) == pytest.approx((2 / 3 + 4 / 5) / 2)
    assert macro_f1([3, 3, 5], [3, 3, 5]) == 1.0
    assert macro_f1([0, 1], [2, 2]) == 0.0  # predicting a class absent from the truth earns nothing
    with pytest.raises(ValueError):
        macro_f1([0, 1], [0])


def test_logistic_regression_separates_separable_classes_and_not_noise() -> None:
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(6, 10)) * 4.0
    y = rng.integers(0, 6, 300)
    x = centres[y] + rng.normal(size=(300, 10))
    f1, acc = probe_f1(x[:200], y[:200], x[200:], y[200:])
    assert f1 > 0.98 and acc > 0.98
    # Labels that carry no information about x: a linear probe must stay near chance (1/6).
    f1_noise, _ = probe_f1(x[:200], rng.integers(0, 6, 200), x[200:], y[200:])
    assert f1_noise < 0.4
    clf = fit_logistic(x[:200] * 1000.0 + 5.0, y[:200] + 10)  # scale and label offsets do not matter
    assert set(clf.predict(x[200:] * 1000.0 + 5.0)) <= set(range(10, 16))
    with pytest.raises(ValueError):
        fit_logistic(np.full((3, 2), np.nan), [0, 1, 0])


# -- transfer ------------------------------------------------------------------------------------
def test_transfer_cli_end_to_end(model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "in.wav"
    _write_wav(src, np.concatenate([np.zeros(4410), _tone(0, 58, 1.2, 44100)]), 44100)  # resampled, trimmed
    out = tmp_path / "out.wav"
    assert main(["transfer", str(src), "--target", "Cello", "--alpha", "0.75", "--out", str(out),
                 "--model", str(model)]) == 0
    text = capsys.readouterr().out
    assert "pitch MIDI 58" in text and "target cello" in text and "alpha 0.75" in text
    audio, rate = read_wav_mono(out)
    assert rate == SR and len(audio) / rate == pytest.approx(1.2 + 0.01, abs=0.03)  # note length kept
    est = crepe.estimate(audio, rate)
    assert abs(est.cents_from(58)) < 25, est
    # --pitch and --source by index; a fractional pitch is played at the nearest trained pitch.
    assert main(["transfer", str(src), "--target", "3", "--source", "0", "--pitch", "60.2", "--out", str(out),
                 "--model", str(model)]) == 0
    text = capsys.readouterr().out
    assert "source piano" in text and "target french_horn" in text and "pitch MIDI 60 (+20 cents" in text
    assert abs(crepe.estimate(*read_wav_mono(out)).cents_from(60)) < 25


def test_transfer_rejects_bad_input(model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.wav"
    _write_wav(good, _tone(1, 57, 0.8, SR), SR)
    text = tmp_path / "notes.wav"
    text.write_text("not audio")
    silent = tmp_path / "silent.wav"
    _write_wav(silent, np.zeros(SR), SR)
    out = tmp_path / "out.wav"
    cases = [
        ([str(tmp_path / "missing.wav"), "--target", "cello"], "no such file"),
        ([str(text), "--target", "cello"], "not a readable WAV"),
        ([str(silent), "--target", "cello"], "silent"),
        ([str(good), "--target", "kazoo"], "unknown instrument 'kazoo'; expected an index or one of: piano"),
        ([str(good), "--target", "9"], "out of range"),
        ([str(good), "--target", "cello", "--source", "tuba"], "unknown instrument 'tuba'"),
        ([str(good), "--target", "cello", "--alpha", "inf"], "alpha inf is not a finite number"),
        ([str(good), "--target", "cello", "--pitch", "200"], "not a MIDI pitch"),
    ]
    for args, message in cases:
        assert main(["transfer", *args, "--out", str(out), "--model", str(model)]) == 2, args
        err = capsys.readouterr().err
        assert err.startswith("timbrespace transfer: ") and message in err, (args, err)
        assert not out.exists() and not list(tmp_path.glob(".out.wav*")), args  # nothing half-written
    (tmp_path / "adir").mkdir()
    assert main(["transfer", str(good), "--target", "cello", "--pitch", "57", "--out", str(tmp_path / "adir"),
                 "--model", str(model)]) == 2
    assert "cannot write" in capsys.readouterr().err
    assert main(["transfer", str(good), "--target", "cello", "--out", str(out), "--model",
                 str(tmp_path / "none.pt")]) == 2
    assert "no such file; expected a timbre-gmvae checkpoint" in capsys.readouterr().err


# -- the evaluation ------------------------------------------------------------------------------
def test_quick_settings_are_a_few_notes_with_the_full_runs_judge_recipe() -> None:
    quick, full = Settings.make(True), Settings.make(False)
    assert (quick.valid_per_instrument, quick.transfer_per_source, quick.cnn_train_per_instrument) == (1, 1, 16)
    assert quick.cnn_epochs == 6 and quick.cnn_jitter_frames == full.cnn_jitter_frames == 8
    assert full.valid_per_instrument is None and full.cnn_train_per_instrument is None


def test_eval_quick_writes_json_report_and_plots(model: Path, data: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    j, md = tmp_path / "e.json", tmp_path / "r.md"
    assert main(["eval", "timbre", "--quick", "--model", str(model), "--manifest", str(data), "--cache",
                 str(tmp_path / "cache"), "--out-json", str(j), "--markdown", str(md), "--plots", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "instrument_from_zt" in printed and "transfer piano->cello" in printed
    r = json.loads(j.read_text())
    assert r["settings"]["quick"] and r["data"]["instruments"] == NAMES
    (m,) = r["models"].values()
    for key in ("instrument_from_zt", "pitch_from_zp", "pitch_from_zt", "instrument_from_zp"):
        assert 0.0 <= m["table1"][key]["f1"] <= 1.0
    assert [(p["source"], p["target"]) for p in m["transfer"]["pairs"]] == [
        ("french_horn", "piano"), ("piano", "cello"), ("cello", "bassoon"), ("bassoon", "french_horn")]
    assert all(len(p["target_posterior"]) == 5 for p in m["transfer"]["pairs"])
    # Rendered notes sit at their labelled pitch: the decoder places harmonics at k f0.
    assert m["synthesis"]["pitch"]["measured"] == m["synthesis"]["notes"] >= 4
    assert m["synthesis"]["pitch"]["within_25c"] == 1.0
    rows = {row["figure"]: row for row in r["headline"]}
    assert rows["instrument_from_zt"]["value"] == m["table1"]["instrument_from_zt"]["f1"]
    for row in rows.values():  # "met" is the comparison with the target, nothing else
        if isinstance(row["value"], float):
            op, thr = row["target"].split()
            assert row["met"] == (row["value"] >= float(thr) if op == ">=" else row["value"] <= float(thr)), row
    assert rows["synthesis_pitch_within_25c"]["met"]
    for kind in ("space", "traversal", "map"):
        png = Path(m["plots"]["files"][kind])
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    report = md.read_text()
    assert "## Figures vs targets" in report and "What differs from the paper" in report
    assert re.search(r"\]\(timbre-[\w-]+-space\.png\)", report)  # plots linked relative to the report


def test_eval_without_a_model_or_data_fails_clearly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "timbre", "--model", str(tmp_path / "x.pt")]) == 2
    assert "no such file" in capsys.readouterr().err
    (tmp_path / "x.pt").write_bytes(b"junk")
    assert main(["eval", "timbre", "--model", str(tmp_path / "x.pt"), "--manifest", str(tmp_path / "m.json"),
                 "--out-json", str(tmp_path / "e.json")]) == 2
    assert "m.json: no such file" in capsys.readouterr().err
    assert not (tmp_path / "e.json").exists()


def test_train_timbre_takes_the_training_modules_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["train", "timbre", "--help"])
    assert e.value.code == 0
    assert "--label-fraction" in capsys.readouterr().out
    assert main(["train", "timbre", "--manifest", "/nonexistent/manifest.json", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("timbrespace train: ") and "/nonexistent/manifest.json" in err


def test_crepe_gives_one_answer_whatever_the_random_state(tmp_path: Path) -> None:
    # torchcrepe dithers its bin centres from numpy's global RNG on first use; we must not.
    code = (
        "import sys, numpy as np\n"
        "np.random.seed(int(sys.argv[1]))\n"
        "from timbrespace.evaluate import pitch\n"
        "sr, f0 = 16000, 220.0 * 2 ** (0.1 / 12)\n"
        "t = np.arange(sr) / sr\n"
        "x = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 8))\n"
        "print(repr(pitch.estimate(x, sr).cents_from(57.0)))\n"
    )
    runs = [subprocess.run([sys.executable, "-c", code, str(seed)], capture_output=True, text=True, check=True)
            for seed in (1, 2)]
    first, second = (float(r.stdout) for r in runs)
    assert first == second and abs(first - 10.0) < 10.0  # the tone is 10 cents above A3


def test_eval_unseen_reports_probes_reconstruction_and_transfer(model: Path, data: Path, unseen_data: Path,
                                                               tmp_path: Path) -> None:
    j, md = tmp_path / "e.json", tmp_path / "r.md"
    assert main(["eval", "timbre", "--quick", "--model", str(model), "--manifest", str(data), "--cache",
                 str(tmp_path / "cache"), "--out-json", str(j), "--markdown", str(md), "--plots", str(tmp_path),
                 "--unseen", str(unseen_data)]) == 0
    (m,) = json.loads(j.read_text())["models"].values()
    u = m["unseen"]["other"]
    assert u["notes"] == 20 and set(u["per_instrument"]) == set(NAMES)
    # Nothing is fitted on these notes; they are the training tones, so probes and judge know them,
    # which they would not if the set's own instrument order leaked through.
    assert set(u["probes"]) == {"instrument_from_zt", "pitch_from_zp", "pitch_from_zt"}
    assert u["probes"]["instrument_from_zt"]["f1"] >= 0.75, u["probes"]
    rec = u["reconstruction"]
    assert rec["notes"] == 4  # --quick: one per instrument
    assert rec["judge_on_the_notes_accuracy"] >= 0.75, rec
    assert 0.0 <= rec["instrument_f1"] <= 1.0 and rec["pitch"]["within_25c"] == 1.0  # harmonics at k f0
    assert [(p["source"], p["target"]) for p in u["transfer"]["pairs"]] == [
        ("french_horn", "piano"), ("piano", "cello"), ("cello", "bassoon"), ("bassoon", "french_horn")]
    assert all(len(p["target_posterior"]) == 5 and p["notes"] == 1 for p in u["transfer"]["pairs"])
    report = md.read_text()
    assert "## Unseen recordings" in report and "Reconstruction (4 notes" in report
    assert "| piano -> cello | 1 |" in report
