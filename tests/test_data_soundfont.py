"""Training data: real notes through real FluidSynth, the split, the manifest, user folders, errors."""

from __future__ import annotations

import json
import wave
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from timbrespace import config
from timbrespace.cli import main
from timbrespace.data import folder, soundfont
from timbrespace.data import manifest as mf
from timbrespace.data.fluid import FluidRenderer
from timbrespace.data.soundfont import DEFAULT_SOUNDFONT, INSTRUMENTS, DataError
from timbrespace.data.split import split_groups

from conftest import note_f0 as f0
from conftest import read_mono16 as read

pytestmark = [pytest.mark.numeric,
              pytest.mark.skipif(not DEFAULT_SOUNDFONT.is_file(), reason="apt-get install fluid-soundfont-gm")]

SR = 22050
INSTR = ["violin", "flute"]
PITCHES = [60, 69, 81, 103]  # 103: violin only (flute stops at 96), and FluidR3 has no sample there


def rms_db(x: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(x**2)) + 1e-12))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> soundfont.BuildResult:
    out = tmp_path_factory.mktemp("sf")
    return soundfont.build(out, instruments=INSTR, pitches=PITCHES)


def test_notes_have_the_labelled_pitch_level_and_release(built: soundfont.BuildResult) -> None:
    root = built.path.parent
    assert [(n.instrument, n.pitch, n.velocity) for n in built.manifest.notes] == [
        (i, p, v) for i in INSTR for p in (60, 69, 81) for v in (64, 100, 127)]
    peaks = {}
    for n in built.manifest.notes:
        x = read(root / n.file)
        assert x.shape == (2 * SR,)
        cents = 1200 * np.log2(f0(x) / (440 * 2 ** ((n.pitch - 69) / 12)))
        assert abs(cents) < 25, (n.file, cents)
        assert -30 < 20 * np.log10(np.abs(x).max()) < -0.5, n.file  # audible, and headroom below clipping
        held, tail = rms_db(x[int(1.3 * SR):int(1.5 * SR)]), rms_db(x[int(1.8 * SR):])
        assert held > -45, (n.file, held)  # still sounding up to note-off
        assert tail < held - 12, (n.file, held, tail)  # and released after it
        assert abs(x[: int(0.005 * SR)]).max() < abs(x).max()  # starts at t=0 from silence, not mid-note
        peaks[(n.instrument, n.pitch, n.velocity)] = np.abs(x).max()
    for i in INSTR:  # velocity reaches the sound: louder with each step
        assert peaks[(i, 69, 64)] < peaks[(i, 69, 100)] < peaks[(i, 69, 127)]
    assert 0 < built.peak < 1


def test_silent_notes_are_dropped_with_a_reason(built: soundfont.BuildResult) -> None:
    assert [(d.instrument, d.pitch, d.velocity, d.file) for d in built.manifest.dropped] == [
        ("violin", 103, v, f"violin/violin_103_v{v:03d}.wav") for v in (64, 100, 127)]
    for d in built.manifest.dropped:
        assert "silent" in d.reason
        assert not (built.path.parent / d.file).exists()


def test_manifest_has_exactly_the_documented_shape(built: soundfont.BuildResult) -> None:
    data = json.loads(built.path.read_text())
    assert list(data) == ["version", "sample_rate", "note_off_s", "duration_s", "soundfont", "soundfont_sha256",
                          "instruments", "notes", "dropped"]
    assert (data["version"], data["sample_rate"], data["note_off_s"], data["duration_s"]) == (1, 22050, 1.5, 2.0)
    assert data["soundfont"] == str(DEFAULT_SOUNDFONT.resolve()) and len(data["soundfont_sha256"]) == 64
    assert data["instruments"][1] == {"index": 1, "name": "flute", "program": 73, "bank": 0, "low": 60, "high": 81}
    note = data["notes"][0]
    assert list(note) == ["file", "instrument", "instrument_index", "pitch", "velocity", "split", "sha256"]
    assert note["file"] == "violin/violin_060_v064.wav" and note["instrument_index"] == 0
    for n in data["notes"]:
        assert mf.sha256_file(built.path.parent / n["file"]) == n["sha256"]
    assert mf.load(built.path.parent) == built.manifest


def test_rendering_is_deterministic_and_incremental(built: soundfont.BuildResult, tmp_path: Path) -> None:
    again = soundfont.build(tmp_path, instruments=INSTR, pitches=PITCHES)
    assert again.path.read_bytes() == built.path.read_bytes()  # same hashes, splits and all, byte for byte
    for n in again.manifest.notes:
        assert (tmp_path / n.file).read_bytes() == (built.path.parent / n.file).read_bytes()
    # Re-running keeps matching files; a damaged one is rendered again, --force renders all.
    victim = tmp_path / again.manifest.notes[2].file
    victim.write_bytes(b"damaged")
    r = soundfont.build(tmp_path, instruments=INSTR, pitches=PITCHES)
    assert (r.rendered, r.unchanged) == (1, 17)
    assert mf.sha256_file(victim) == again.manifest.notes[2].sha256
    r = soundfont.build(tmp_path, instruments=INSTR, pitches=PITCHES, force=True)
    assert (r.rendered, r.unchanged) == (18, 0)


def test_each_note_starts_from_a_fresh_synth() -> None:
    with FluidRenderer(DEFAULT_SOUNDFONT, SR) as fr:
        alone = fr.render(0, 73, 69, 100, 1.5, 2.0)
        fr.render(0, 0, 21, 127, 1.5, 2.0)  # a long piano note before it must leave nothing behind
        after = fr.render(0, 73, 69, 100, 1.5, 2.0)
    assert np.array_equal(alone, after)


def test_a_note_that_would_clip_fails_loudly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(soundfont, "OUTPUT_GAIN", 50.0)
    with pytest.raises(DataError, match=r"flute/flute_069_v127.wav clips \(peak"):
        soundfont.build(tmp_path, instruments=["flute"], pitches=[69], velocities=[127])
    assert not (tmp_path / "manifest.json").exists()


def test_split_is_stratified_seeded_and_leakage_free() -> None:
    notes = soundfont.plan(INSTRUMENTS)
    assert len(notes) == 3 * sum(s.high - s.low + 1 for s in INSTRUMENTS) == 1518
    split = split_groups((n.instrument.name, n.pitch) for n in notes)
    assert split == split_groups((n.instrument.name, n.pitch) for n in reversed(notes))  # order-free
    per: dict[str, list[str]] = defaultdict(list)
    for (name, _), side in split.items():
        per[name].append(side)
    for s in INSTRUMENTS:
        n = s.high - s.low + 1
        assert per[s.name].count("valid") == round(0.1 * n), s.name  # every instrument, ~10%, on both sides
    by_note = [split[(n.instrument.name, n.pitch)] for n in notes]
    assert 0.09 < by_note.count("valid") / len(by_note) < 0.11
    other = split_groups((n.instrument.name, n.pitch) for n in notes)
    assert other == split and split_groups(split, seed=1) != split
    # A subset keeps each instrument's own draw: flute's split does not depend on the others.
    flute = {k: v for k, v in split.items() if k[0] == "flute"}
    assert split_groups(flute) == flute
    assert "valid" in split_groups([("x", 1), ("x", 2)]).values()  # even a tiny instrument gets one


def test_rendered_split_keeps_velocities_of_a_pitch_together(built: soundfont.BuildResult) -> None:
    sides: dict[tuple[str, int], set[str]] = defaultdict(set)
    for n in built.manifest.notes:
        sides[(n.instrument, n.pitch)].add(n.split)
    assert all(len(s) == 1 for s in sides.values()), sides
    for i in INSTR:  # 3 pitches each: one valid, two train
        assert sorted(next(iter(sides[(i, p)])) for p in (60, 69, 81)) == ["train", "train", "valid"]


def test_manifest_refuses_duplicate_files(tmp_path: Path) -> None:
    m = mf.Manifest(22050, 1.5, 2.0, "", "", [mf.Instrument(0, "a", -1, -1, 60, 61)], [
        mf.Note("a/1.wav", "a", 0, 60, 64, "train", "0" * 64), mf.Note("a/1.wav", "a", 0, 61, 64, "train", "0" * 64)])
    with pytest.raises(mf.ManifestError, match="unique"):
        m.save(tmp_path)
    assert not (tmp_path / "manifest.json").exists()


def test_missing_soundfont_is_a_clear_cli_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.sf2"
    assert main(["data", "soundfont", "--soundfont", str(missing), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "does not exist" in err
    assert not (tmp_path / "o").exists()
    not_sf = tmp_path / "text.sf2"
    not_sf.write_text("not a soundfont")
    assert main(["data", "soundfont", "--soundfont", str(not_sf), "--out", str(tmp_path / "o")]) == 2
    assert "not a SoundFont" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_config_has_a_data_section() -> None:
    cfg = config.load(None)
    assert cfg.data.soundfont == DEFAULT_SOUNDFONT
    assert cfg.data.data_dir == config.REPO_ROOT / "var" / "data" / "soundfont"
    with pytest.raises(config.ConfigError, match=r"data\.data_dir = 3 must be a non-empty path"):
        config.from_dict({"data": {"data_dir": 3}})


def _write_wav(path: Path, freq: float, sr: int, seconds: float, channels: int = 1) -> None:
    t = np.arange(int(sr * seconds)) / sr
    x = (0.5 * np.sin(2 * np.pi * freq * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes(np.repeat(x, channels).tobytes())


def test_user_folder_is_resampled_labelled_and_split(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "mine"
    src.mkdir()
    _write_wav(src / "a4.wav", 440.0, 44100, 1.0, channels=2)  # stereo, 44.1 kHz, shorter than 2 s
    _write_wav(src / "e5.wav", 659.255, 48000, 3.0)  # longer than 2 s
    (src / "labels.csv").write_text("file,instrument,pitch,velocity\na4.wav,kazoo,69,90\ne5.wav,banjo,76,\n")
    out = tmp_path / "out"
    assert main(["data", "folder", str(src), "--out", str(out)]) == 0
    assert "2 notes, 0 dropped" in capsys.readouterr().out
    m = mf.load(out)
    assert [(i.index, i.name) for i in m.instruments] == [(0, "banjo"), (1, "kazoo")]
    assert [(n.file, n.instrument_index, n.pitch, n.velocity) for n in m.notes] == [
        ("kazoo/kazoo_069_v090.wav", 1, 69, 90), ("banjo/banjo_076_v100.wav", 0, 76, 100)]
    for n in m.notes:
        x = read(out / n.file)
        assert x.shape == (2 * SR,)
        assert abs(1200 * np.log2(f0(x) / (440 * 2 ** ((n.pitch - 69) / 12)))) < 25
        assert mf.sha256_file(out / n.file) == n.sha256
    assert abs(read(out / m.notes[0].file)[int(1.5 * SR):]).max() == 0  # 1 s input, zero-padded


@pytest.mark.parametrize(
    ("csv", "needle"),
    [
        ("file,instrument\na.wav,kazoo\n", "missing column(s) pitch"),
        ("file,instrument,pitch\na.wav,kazoo,200\n", "line 2: pitch 200 is out of range; expected a MIDI note 0-127"),
        ("file,instrument,pitch\na.wav,kazoo,high\n", "line 2: pitch 'high' is not a whole number"),
        ("file,instrument,pitch\nbroken.wav,kazoo,60\n", "cannot read"),
        ("file,instrument,pitch\nnothere.wav,kazoo,60\n", "nothere.wav"),
        ("file,instrument,pitch\na.wav,ka/zoo,60\n", "instrument 'ka/zoo' must be letters"),
    ],
)
def test_bad_user_folders_are_named_and_write_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], csv: str, needle: str
) -> None:
    src = tmp_path / "mine"
    src.mkdir()
    _write_wav(src / "a.wav", 440.0, 22050, 0.5)
    (src / "broken.wav").write_bytes(b"RIFF not really a wave file")
    (src / "labels.csv").write_text(csv)
    out = tmp_path / "out"
    assert main(["data", "folder", str(src), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert needle in err, err
    assert not out.exists()
    with pytest.raises(DataError, match="cannot read"):
        folder.build(tmp_path / "nowhere", out)
