"""Mixed training sets (issue 17): augmentation measured on generated notes, and a real mix of
FluidR3 and freepats notes rendered here."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from timbrespace.cli import main
from timbrespace.data import augment, mix, soundfont
from timbrespace.data import manifest as mf
from timbrespace.data.soundfont import DEFAULT_SOUNDFONT, DataError
from timbrespace.models.timbre_features import load_notes

from conftest import note_f0, read_mono16

pytestmark = [pytest.mark.numeric]

SR = 22050
FREEPATS = Path("/etc/timidity/freepats.cfg")


def tone(f0: float = 330.0, seconds: float = 2.0, off: float = 1.5) -> np.ndarray:
    """A harmonic note with an attack and a release at ``off`` (what a rendered note looks like)."""
    t = np.arange(int(seconds * SR)) / SR
    env = np.minimum(t / 0.01, 1.0) * np.where(t < off, 1.0, np.exp(-(t - off) / 0.05))
    x = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 21))  # up to 6.6 kHz
    return (0.3 * env * x).astype(np.float32)


def band_db(x: np.ndarray, lo: float, hi: float) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
    f = np.fft.rfftfreq(len(x), 1 / SR)
    return float(10 * np.log10(spec[(f >= lo) & (f < hi)].sum() + 1e-30))


def chain(**kw: float) -> augment.Chain:
    base = dict(gain_db=0.0, tilt_db_per_octave=0.0, detune_cents=0.0, room_rt60_s=0.0, room_wet=0.0,
                noise_dbfs=-math.inf, lowpass_hz=0.0)
    return augment.Chain(**{**base, **kw})


def test_each_effect_does_what_it_claims_and_the_pitch_label_holds() -> None:
    x = tone()
    held = slice(int(0.2 * SR), int(1.4 * SR))
    # Detuning: as drawn, within the label's 25 cents.
    y = augment.apply(x, SR, chain(detune_cents=augment.MAX_DETUNE_CENTS), "d")
    assert abs(1200 * math.log2(note_f0(y) / note_f0(x)) - augment.MAX_DETUNE_CENTS) < 3
    # A room: the release rings on (energy after the note-off up by 20 dB or more).
    y = augment.apply(x, SR, chain(room_rt60_s=1.0, room_wet=0.5), "r")
    tail = slice(int(1.7 * SR), int(2.0 * SR))
    assert band_db(y[tail], 50, 8000) > band_db(x[tail], 50, 8000) + 20
    # A band limit: 40 dB less above it, the fundamental kept within 1 dB.
    y = augment.apply(x, SR, chain(lowpass_hz=3400.0), "l")
    assert band_db(y[held], 4500, 7000) < band_db(x[held], 4500, 7000) - 40
    assert abs(band_db(y[held], 300, 360) - band_db(x[held], 300, 360)) < 1
    # A tilt of +3 dB/octave: the 8th harmonic (3 octaves up) gains 9 dB on the fundamental.
    y = augment.apply(x, SR, chain(tilt_db_per_octave=3.0), "t")
    gain = lambda z, f: band_db(z[held], f * 0.97, f * 1.03)  # noqa: E731
    assert abs((gain(y, 2640) - gain(y, 330)) - (gain(x, 2640) - gain(x, 330)) - 9.0) < 1.0
    # A noise floor at -50 dBFS RMS where the note is silent, and the peak bound.
    silent = np.zeros(SR, np.float32)
    y = augment.apply(silent, SR, chain(noise_dbfs=-50.0), "n")
    assert abs(20 * math.log10(np.sqrt(np.mean(y.astype(np.float64) ** 2))) + 50) < 1
    y = augment.apply(x, SR, chain(gain_db=20.0), "g")
    assert np.abs(y).max() <= augment.PEAK + 1e-6 and np.isfinite(y).all()


def test_chains_are_drawn_by_name_within_their_ranges() -> None:
    a, b = augment.draw("violin/violin_060_v100_aug0.wav"), augment.draw("violin/violin_060_v100_aug0.wav")
    assert a == b  # the same file gets the same chain, in any order, on any machine
    chains = [augment.draw(f"n{k}.wav") for k in range(400)]
    assert len({c.gain_db for c in chains}) == 400
    assert all(abs(c.detune_cents) <= augment.MAX_DETUNE_CENTS for c in chains)
    assert all(c.lowpass_hz in (0.0, *augment.BAND_LIMITS_HZ) for c in chains)
    assert 0.5 < np.mean([c.room_rt60_s > 0 for c in chains]) < 0.9  # most, not all, in a room
    assert all(math.isfinite(v) for c in chains for v in c.to_dict().values())


@pytest.mark.skipif(not DEFAULT_SOUNDFONT.is_file() or not FREEPATS.is_file() or shutil.which("timidity") is None,
                    reason="apt-get install fluid-soundfont-gm timidity freepats (the Makefile does)")
def test_a_mix_of_two_sources_links_splits_and_augments(tmp_path: Path) -> None:
    kw = dict(instruments=["violin", "flute"], pitches=[60, 62, 64, 67, 69, 72], velocities=(100,))
    soundfont.build(tmp_path / "fluid", DEFAULT_SOUNDFONT, **kw)  # type: ignore[arg-type]
    soundfont.build(tmp_path / "freepats", FREEPATS, **kw)  # type: ignore[arg-type]
    assert main(["data", "mix", str(tmp_path / "fluid"), str(tmp_path / "freepats"), "--out",
                 str(tmp_path / "mix"), "--copies", "2"]) == 0
    m = mf.load(tmp_path / "mix")
    assert [s.name for s in m.sources] == ["FluidR3_GM", "freepats"]
    plain = [n for n in m.notes if not n.augment]
    assert len(plain) == 24 and {n.source for n in plain} == {"FluidR3_GM", "freepats"}
    # One split over the union: a pitch held out is held out in every source, and never augmented;
    # the first source's notes keep its own split.
    side = {(n.instrument, n.pitch): n.split for n in plain}
    assert all(side[(n.instrument, n.pitch)] == n.split for n in m.notes)
    assert all(side[(n.instrument, n.pitch)] == n.split for n in mf.load(tmp_path / "fluid").notes)
    assert {n.split for n in plain} == {"train", "valid"}
    augmented = [n for n in m.notes if n.augment]
    assert len(augmented) == 2 * sum(n.split == "train" for n in plain)
    assert all(n.split == "train" for n in augmented)
    # What a model card shows of the mix: each source's notes per split and its augmented copies.
    counts = mix.source_counts(tmp_path / "mix" / "manifest.json")
    assert [c["name"] for c in counts] == ["FluidR3_GM", "freepats"]
    assert all(c["train"] + c["valid"] == 12 and c["augmented"] == 2 * c["train"] for c in counts)
    assert mix.source_counts(tmp_path / "fluid" / "manifest.json") == []
    for n in m.notes:  # every file is there, with the hash the manifest says
        assert mf.sha256_file(tmp_path / "mix" / n.file) == n.sha256
    # The model's features know which notes are copies (its instrument means come from the others).
    feats = load_notes(tmp_path / "mix" / "manifest.json", cache_dir=None)
    assert feats.augmented.tolist() == [bool(n.augment) for n in m.notes] and 0 < feats.augmented.sum() < len(m.notes)
    # The labels hold: each augmented copy's pitch within 25 cents of its label.
    for n in augmented[:6]:
        f = note_f0(read_mono16(tmp_path / "mix" / n.file))
        assert abs(1200 * math.log2(f / (440 * 2 ** ((n.pitch - 69) / 12)))) < 25, (n.file, f, n.augment)
    # Sources that do not match are refused, naming why; nothing is written.
    soundfont.build(tmp_path / "oboe", FREEPATS, instruments=["oboe"], pitches=[69], velocities=(100,))
    with pytest.raises(DataError, match=r"instruments \['oboe'\] differ"):
        mix.build([tmp_path / "fluid", tmp_path / "oboe"], tmp_path / "bad")
    with pytest.raises(DataError, match="two sources are named 'FluidR3_GM'"):
        mix.build([tmp_path / "fluid", tmp_path / "fluid"], tmp_path / "bad")
    assert not (tmp_path / "bad" / "manifest.json").exists()
    assert main(["data", "mix", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x")]) == 2


def _manifest(keys: list[tuple[str, int, mf.Split]]) -> mf.Manifest:
    notes = [mf.Note(f"{i}_{p}.wav", i, 0, p, 100, split, "") for i, p, split in keys]
    return mf.Manifest(SR, 1.5, 2.0, "", "", notes=notes)


def test_the_mix_keeps_the_first_sources_split_and_splits_only_the_keys_it_lacks() -> None:
    # The reference holds pitch 64 out; split_groups over these keys alone might not.
    ref = _manifest([("violin", p, "valid" if p == 64 else "train") for p in (60, 62, 64, 65, 67)])
    other = _manifest([("violin", p, "train") for p in (60, 62, 64, 65, 67, 90, 91)])
    split = mix.union_split(Path("ref"), ref, [ref, other], seed=0)
    assert {("violin", n.pitch): n.split for n in ref.notes}.items() <= split.items()
    # The two keys only the other source has: split among themselves, one held out.
    assert sorted(split[("violin", p)] for p in (90, 91)) == ["train", "valid"]
    broken = _manifest([("violin", 60, "train"), ("violin", 60, "valid")])
    with pytest.raises(DataError, match="violin pitch 60 is in both splits"):
        mix.union_split(Path("ref"), broken, [broken], seed=0)
