"""`timbrespace eval patch-vae`: the timbral models' shim, the path scores, and the command end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from timbrespace import cli
from timbrespace.evaluate import patch_report, smoothness, timbral
from timbrespace.fidelity import reference
from timbrespace.models.patch_space import default_checkpoint

ROOT = Path(__file__).resolve().parents[1]
SR = 48000
needs_timbral = pytest.mark.skipif(not timbral.available(),
                                   reason="timbral_models not installed (make venv installs it)")


def _saw(seconds: float = 1.0, f0: float = 261.63, harmonics: int = 60) -> np.ndarray:
    """A band-limited sawtooth under a plucked envelope (a fast attack, then decay)."""
    t = np.arange(int(seconds * SR)) / SR
    k = np.arange(1, harmonics + 1)[:, None]
    saw = (np.sin(2 * np.pi * f0 * k * t) / k).sum(axis=0)
    return 0.3 * np.minimum(1.0, t / 0.005) * np.exp(-2.0 * t) * saw


def _lowpassed(x: np.ndarray, cutoff: float = 500.0) -> np.ndarray:
    from scipy.signal import butter, sosfilt

    return np.asarray(sosfilt(butter(4, cutoff, fs=SR, output="sos"), x))


@needs_timbral
@pytest.mark.numeric
def test_brightness_and_sharpness_order_a_bright_and_a_lowpassed_signal() -> None:
    bright, dull = timbral.rate(_saw(), SR), timbral.rate(_lowpassed(_saw()), SR)
    assert set(bright) == set(timbral.QUALITIES)
    for r in (bright, dull):
        assert all(np.isfinite(v) for v in r.values()), r
    # Removing everything above 500 Hz from a 60-harmonic saw is a change no rater of brightness
    # could miss: well over ten points on the 0-100 scale, not a tie.
    assert bright["brightness"] > dull["brightness"] + 10.0, (bright, dull)
    assert bright["sharpness"] > dull["sharpness"] + 5.0, (bright, dull)


@needs_timbral
def test_the_shim_changes_nothing_outside_the_timbral_models() -> None:
    import librosa

    timbral.rate(_saw(0.5), SR)
    assert not hasattr(np.lib, "pad"), "numpy itself must not gain the alias"
    with pytest.raises(TypeError):  # today's librosa still refuses the old positional form
        librosa.onset.onset_strength(_saw(0.5), SR)


@needs_timbral
def test_rate_refuses_silence_and_nan_by_name() -> None:
    with pytest.raises(ValueError, match="silent"):
        timbral.rate(np.zeros(SR), SR)
    with pytest.raises(ValueError, match="finite"):
        timbral.rate(np.full(SR, np.nan), SR)


def test_a_straight_path_is_smooth_and_a_jump_is_not() -> None:
    ends = np.array([[0.0, 10.0], [40.0, 30.0]])
    scale = np.array([10.0, 5.0])
    t = np.linspace(0.0, 1.0, 9)[:, None]
    straight = (1 - t) * ends[0] + t * ends[1]
    jump = np.where(t < 0.5, ends[0], ends[1])
    for score in (smoothness.roughness, smoothness.nonlinearity, smoothness.relative_roughness):
        assert score(straight, scale) == pytest.approx(0.0, abs=1e-12)
    # A step from one end to the other: two second differences as large as the whole span (4 and 4
    # scaled units per feature), so 2 x (4^2 + 4^2) / 2 features.
    assert smoothness.roughness(jump, scale) == pytest.approx(32.0)
    assert smoothness.nonlinearity(jump, scale) > 0.5
    assert smoothness.relative_roughness(jump, scale) == pytest.approx(64.0 / 33.0)
    with pytest.raises(ValueError, match="steps >= 3"):
        smoothness.roughness(straight[:2], scale)
    with pytest.raises(ValueError, match="positive"):
        smoothness.roughness(straight, np.array([1.0, 0.0]))


def test_a_share_of_few_pairs_is_known_only_within_its_interval() -> None:
    # Wilson's 90 % interval: 8 of 10 cannot tell 65 % from 80 %; 32 of 40 narrows it to about +-10 points.
    lo, hi = smoothness.share_interval(8, 10)
    assert lo < 0.65 < 0.8 < hi
    lo40, hi40 = smoothness.share_interval(32, 40)
    assert lo < lo40 < 0.8 < hi40 < hi and 0.15 < hi40 - lo40 < 0.25
    assert smoothness.share_interval(0, 10)[0] == 0.0 and smoothness.share_interval(10, 10)[1] == 1.0
    assert smoothness.share_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError, match="between 0 and n"):
        smoothness.share_interval(11, 10)


def test_the_card_section_replaces_its_earlier_self(tmp_path: Path) -> None:
    card = tmp_path / "MODEL_CARD.md"
    card.write_text("# m\n\n## Metrics\n\nx\n\n## Limits\n\n- y\n")
    first = patch_report.CARD_BEGIN + "\n## Heard (measured 2026-01-01)\n" + patch_report.CARD_END
    card.write_text(patch_report.update_card(card, first))
    assert card.read_text().index("## Heard") < card.read_text().index("## Limits")
    second = patch_report.CARD_BEGIN + "\n## Heard (measured 2026-02-02)\n" + patch_report.CARD_END
    text = patch_report.update_card(card, second)
    assert text.count(patch_report.CARD_BEGIN) == 1 and "2026-02-02" in text and "2026-01-01" not in text
    assert text.startswith("# m\n\n## Metrics\n\nx\n") and text.endswith("## Limits\n\n- y\n")


def test_a_rerun_keeps_the_hand_written_section_and_only_it() -> None:
    hand = f"{patch_report.KEEP_BEGIN}\n## Towards a better map\n\nvariant figures\n{patch_report.KEEP_END}"
    old = "# report of 2026-01-01\n\nold table\n\n" + hand + "\n"
    new = patch_report.keep_hand_written(old, "# report of 2026-02-02\n\nnew table\n")
    assert new.startswith("# report of 2026-02-02\n\nnew table\n") and "old table" not in new
    assert new.count("variant figures") == 1 and new.rstrip().endswith(patch_report.KEEP_END)
    # Run again on its own output: still one copy.
    assert patch_report.keep_hand_written(new, "# again\n").count("variant figures") == 1
    # No section (or an unterminated one): the new report as it is.
    assert patch_report.keep_hand_written("# old\n", "# new\n") == "# new\n"
    assert patch_report.keep_hand_written(patch_report.KEEP_BEGIN + " x", "# new\n") == "# new\n"


def _cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env_path = str(ROOT / "server")
    return subprocess.run([sys.executable, "-m", "timbrespace", "eval", "patch-vae", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": env_path})


@needs_timbral
@pytest.mark.skipif(not reference.available(), reason="amSynth's DSSI plugin is not installed (make deps installs it)")
@pytest.mark.skipif(not default_checkpoint().is_file(), reason="no shipped patch-vae checkpoint")
def test_quick_run_writes_table_one_figures_and_paths(tmp_path: Path) -> None:
    out = _cli("--quick", "--json", str(tmp_path / "r.json"), "--markdown", str(tmp_path / "r.md"),
               "--plots", str(tmp_path / "plots"))
    assert out.returncode == 0, out.stderr
    assert "Table I" in out.stdout and "Traceback" not in out.stderr
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["settings"]["validation_presets"] == 330  # the checkpoint's own split, recovered
    table = result["table"]
    assert len(table["presets"]) + len(table["silent"]) == 3
    for q in timbral.QUALITIES:
        m = table["model"][q]
        assert 0.0 <= m["mean"] <= m["rmse"] <= 100.0  # RMSE bounds the mean |error| from above
    assert len(result["figure8"]["maps"]["brightness"]) == 2
    assert len(result["paths"]["pairs"]) + len(result["paths"]["skipped"]) == 1
    cover = result["coverage"]
    assert cover["grid"] == 4 and 0.0 <= cover["holds_note_share"] <= 1.0 and 0.0 <= cover["bright_share"] <= 1.0
    assert 0.0 <= cover["likeness"]["like_preset_share"] <= 1.0 and cover["likeness"]["presets_heard"] <= 32
    md = (tmp_path / "r.md").read_text()
    assert "| brightness | 10.33 |" in md  # beside the paper's figure
    assert "## Coverage: the whole square" in md and "| square: cells that hold a note |" in md
    assert "coverage: a 4x4 grid" in out.stdout
    for name in ("patch-map-fig8.png", "patch-map-table1.png", "patch-map-paths.png", "patch-map-coverage.png"):
        assert (tmp_path / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({'plots/' + name})" in md


@pytest.mark.parametrize(("args", "code", "says"), [
    (["--model", "no/such.pt"], 2, "no/such.pt: no such file"),
    (["--seed", "-3"], 2, "--seed -3"),
    (["--seed", "x"], 2, "invalid int value"),
    (["--plots", "README.md"], 2, "--plots README.md: is a file"),
    (["--json", "docs"], 2, "--json docs: is a folder"),
    (["--quick", "--card"], 2, "drop --quick"),
    (["--grid", "0"], 2, "--grid 0: expected an integer of at least 1"),
    (["--pairs", "-1"], 2, "--pairs -1: expected an integer of at least 1"),
    (["--coverage-grid", "0"], 2, "--coverage-grid 0: expected an integer of at least 1"),
])
def test_bad_arguments_say_what_is_wrong_without_a_traceback(args: list[str], code: int, says: str,
                                                             capsys: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # the relative paths above name the repository's own files
    try:
        status = cli.main(["eval", "patch-vae", *args])
    except SystemExit as e:  # argparse's own refusals (a non-integer) exit from inside the parser
        status = int(e.code or 0)
    assert status == code
    assert says in capsys.readouterr().err
