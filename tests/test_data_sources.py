"""Training data from sources other than FluidR3 (issue 17): GUS patches through real TiMidity++
(freepats) and a compressed SoundFont (MuseScore General's .sf3) through real FluidSynth."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from timbrespace.cli import main
from timbrespace.data import manifest as mf
from timbrespace.data import soundfont
from timbrespace.data.soundfont import DataError
from timbrespace.data.timidity import programs

from conftest import note_f0 as f0
from conftest import read_mono16 as read

pytestmark = [pytest.mark.numeric]

FREEPATS = Path("/etc/timidity/freepats.cfg")
MUSESCORE = Path("/usr/share/sounds/sf3/MuseScore_General.sf3")
needs_freepats = pytest.mark.skipif(not FREEPATS.is_file() or shutil.which("timidity") is None,
                                    reason="apt-get install timidity freepats (the Makefile does)")
needs_musescore = pytest.mark.skipif(not MUSESCORE.is_file(),
                                     reason="apt-get install musescore-general-soundfont (the Makefile does)")


def cents(a: float, b: float) -> float:
    return float(1200 * np.log2(a / b))


@needs_freepats
def test_freepats_notes_have_their_labelled_pitch_and_render_the_same_twice(tmp_path: Path) -> None:
    r = soundfont.build(tmp_path / "a", FREEPATS, instruments=["cello", "trumpet"], pitches=[48, 69],
                        velocities=(100,))
    assert r.manifest.soundfont == str(FREEPATS.resolve()) and len(r.manifest.soundfont_sha256) == 64
    files = {(n.instrument, n.pitch): tmp_path / "a" / n.file for n in r.manifest.notes}
    assert set(files) == {("cello", 48), ("cello", 69), ("trumpet", 69)}  # 48 is below the trumpet's range
    for (_, pitch), path in files.items():
        x = read(path)
        assert np.isfinite(x).all() and 1e-3 < np.abs(x).max() < 1.0
        # The label is the pitch played: within 25 cents (the data's pitch claim), vibrato included.
        assert abs(cents(f0(x), 440.0 * 2 ** ((pitch - 69) / 12))) < 25, (path, f0(x))
        assert np.abs(x[int(1.9 * 22050):]).max() < np.abs(x).max()  # released: quieter at the end
    again = soundfont.build(tmp_path / "b", FREEPATS, instruments=["cello", "trumpet"], pitches=[48, 69],
                            velocities=(100,))
    assert [n.sha256 for n in again.manifest.notes] == [n.sha256 for n in r.manifest.notes]  # deterministic
    kept = soundfont.build(tmp_path / "a", FREEPATS, instruments=["cello", "trumpet"], pitches=[48, 69],
                           velocities=(100,))
    assert kept.rendered == 0 and kept.unchanged == 3  # incremental, as for a SoundFont


@needs_freepats
def test_a_patch_set_without_an_instrument_or_a_bad_config_is_refused(tmp_path: Path) -> None:
    cfg = tmp_path / "partial.cfg"
    cfg.write_text("dir /usr/share/midi/freepats\nbank 0\n 40\tTone_000/040_Violin.pat\n")
    assert set(programs(cfg)) == {(0, 40)}
    with pytest.raises(DataError, match=r"partial\.cfg has no preset bank 0 program 42 \(for cello\)"):
        soundfont.build(tmp_path / "out", cfg, instruments=["violin", "cello"], pitches=[60])
    assert not (tmp_path / "out" / "manifest.json").exists()  # nothing half written
    assert main(["data", "soundfont", "--soundfont", str(tmp_path / "nope.cfg"), "--out", str(tmp_path / "o")]) == 2


@needs_musescore
def test_a_compressed_soundfont_renders_through_fluidsynth(tmp_path: Path) -> None:
    r = soundfont.build(tmp_path, MUSESCORE, instruments=["flute"], pitches=[72], velocities=(100,))
    (note,) = r.manifest.notes
    x = read(tmp_path / note.file)
    assert abs(cents(f0(x), 440.0 * 2 ** ((72 - 69) / 12))) < 25
    assert mf.load(tmp_path).soundfont_sha256 == mf.sha256_file(MUSESCORE.resolve())
