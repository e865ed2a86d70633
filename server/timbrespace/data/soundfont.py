"""``timbrespace data soundfont``: the timbre engine's training notes, rendered from a GM SoundFont
(FluidSynth: ``.sf2``, ``.sf3``) or a GUS patch set (TiMidity++: its ``.cfg``, e.g. freepats).

The paper's 12 instruments (section 3.1) are played note by note from General MIDI programs over
their playable ranges at three velocities, written as 16-bit mono WAVs with a manifest. Rendering is
deterministic (same SoundFont, same bytes) and incremental (files whose sha256 already matches the
previous manifest are kept).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from timbrespace.data import manifest as mf
from timbrespace.data import shift as sh
from timbrespace.data.fluid import FluidRenderer, SoundFontError
from timbrespace.data.split import split_groups
from timbrespace.data.timidity import TimidityError, TimidityRenderer, patch_set_sha256
from timbrespace.data.wav import FloatArray, dbfs, encode_pcm16, peak, read_pcm16
from timbrespace.fsutil import atomic_write_bytes

SAMPLE_RATE = 22050  # the paper's rate
NOTE_OFF_S = 1.5
DURATION_S = 2.0
VELOCITIES = (64, 100, 127)
#: Fixed output gain on FluidSynth's float output (synth gain 1.0). FluidR3's loudest of these notes
#: peaks near 0.58, so this leaves about 1.8 dB of headroom; the build fails if any note clips.
OUTPUT_GAIN = 1.4
#: The same for TiMidity++'s 16-bit output: its own amplification (70%) leaves freepats' loudest
#: notes near -11.5 dBFS; this brings them near -5.5 dBFS, in FluidR3's range.
TIMIDITY_GAIN = 2.0
#: A note whose peak stays below this is silent (no sample for that key in the SoundFont).
SILENCE_DBFS = -60.0
DEFAULT_SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")


class DataError(Exception):
    """Bad input or a failed check; the message names the file, note or value."""


@dataclass(frozen=True)
class InstrumentSpec:
    """An instrument as a GM program (0-based) and its playable MIDI range."""

    name: str
    program: int
    low: int
    high: int
    bank: int = 0


INSTRUMENTS: tuple[InstrumentSpec, ...] = (
    InstrumentSpec("piano", 0, 21, 108),
    InstrumentSpec("violin", 40, 55, 103),
    InstrumentSpec("cello", 42, 36, 76),
    InstrumentSpec("english_horn", 69, 52, 81),
    InstrumentSpec("french_horn", 60, 34, 77),
    InstrumentSpec("trombone", 57, 40, 72),
    InstrumentSpec("trumpet", 56, 54, 86),
    InstrumentSpec("saxophone", 65, 49, 81),  # alto sax
    InstrumentSpec("bassoon", 70, 34, 75),
    InstrumentSpec("clarinet", 71, 50, 91),
    InstrumentSpec("flute", 73, 60, 96),
    InstrumentSpec("oboe", 68, 58, 91),
)


@dataclass(frozen=True)
class PlannedNote:
    """One note to render and where it goes, relative to the output folder."""

    instrument: InstrumentSpec
    index: int
    pitch: int
    velocity: int

    @property
    def file(self) -> str:
        n = self.instrument.name
        return f"{n}/{n}_{self.pitch:03d}_v{self.velocity:03d}.wav"


@dataclass
class BuildResult:
    """What a build did, for the one-line summary."""

    manifest: mf.Manifest
    path: Path
    rendered: int
    unchanged: int
    seconds: float
    peak: float
    total_bytes: int


def select(
    instruments: Sequence[str] | None = None, pitches: Iterable[int] | None = None
) -> list[InstrumentSpec]:
    """The instruments to render, in table order, each range narrowed to ``pitches`` when given."""
    names = [s.name for s in INSTRUMENTS]
    for n in instruments or []:
        if n not in names:
            raise DataError(f"unknown instrument {n!r}; expected one of {', '.join(names)}")
    chosen = [s for s in INSTRUMENTS if instruments is None or s.name in instruments]
    if pitches is None:
        return chosen
    want = set(pitches)
    out = []
    for s in chosen:
        inside = sorted(p for p in want if s.low <= p <= s.high)
        if inside:
            out.append(InstrumentSpec(s.name, s.program, inside[0], inside[-1], s.bank))
    if not out:
        raise DataError(f"no pitch of {sorted(want)} is in the range of {', '.join(s.name for s in chosen)}")
    return out


def plan(
    specs: Sequence[InstrumentSpec], pitches: Iterable[int] | None = None, velocities: Sequence[int] = VELOCITIES
) -> list[PlannedNote]:
    """Every (instrument, pitch, velocity) to render; ``pitches`` restricts each range to those keys."""
    for v in velocities:
        if not 1 <= v <= 127:
            raise DataError(f"velocity {v} is out of range [1, 127]")
    want = None if pitches is None else set(pitches)
    return [
        PlannedNote(s, i, p, v)
        for i, s in enumerate(specs)
        for p in range(s.low, s.high + 1)
        if want is None or p in want
        for v in velocities
    ]


def build(
    out: str | os.PathLike[str],
    soundfont: str | os.PathLike[str] = DEFAULT_SOUNDFONT,
    *,
    seed: int = 0,
    force: bool = False,
    instruments: Sequence[str] | None = None,
    pitches: Iterable[int] | None = None,
    velocities: Sequence[int] = VELOCITIES,
    shifted: int = 0,
    max_shift: int = sh.MAX_SHIFT,
    progress: Callable[[Iterable[PlannedNote], int], Iterable[PlannedNote]] | None = None,
) -> BuildResult:
    """Render the data set into ``out`` and write ``out/manifest.json`` last.

    ``instruments``/``pitches``/``velocities`` pick a subset (tests, quick looks). ``shifted`` adds
    that many shifted copies (:mod:`timbrespace.data.shift`) of every training note, each from a
    training key at most ``max_shift`` semitones away. ``progress`` wraps the note iterator (e.g.
    tqdm). Raises DataError on bad input or when any note would clip.
    """
    t0 = time.perf_counter()
    if seed < 0:
        raise DataError(f"--seed {seed} must be >= 0")
    if not 0 <= shifted <= 8:
        raise DataError(f"--shifted {shifted} is out of range [0, 8]")
    if not 1 <= max_shift <= 12:
        raise DataError(f"--max-shift {max_shift} is out of range [1, 12] semitones")
    sf_path = Path(soundfont).expanduser().resolve()
    if not sf_path.is_file():
        raise DataError(f"SoundFont {sf_path} does not exist (expected an .sf2 or .sf3 file, or a TiMidity++ "
                        ".cfg; apt-get install fluid-soundfont-gm, or pass --soundfont PATH)")
    pitch_list = None if pitches is None else sorted(set(pitches))
    specs = select(instruments, pitch_list)
    notes = plan(specs, pitch_list, velocities)
    out_dir = Path(out)

    kept: list[tuple[PlannedNote, str]] = []
    renderer: FluidRenderer | TimidityRenderer
    try:
        if sf_path.suffix == ".cfg":
            renderer, gain = TimidityRenderer(sf_path, SAMPLE_RATE), TIMIDITY_GAIN
            sf_sha = patch_set_sha256(sf_path, [p for (b, prog), p in renderer.programs.items()
                                                if any((s.bank, s.program) == (b, prog) for s in specs)])
        else:
            renderer, gain = FluidRenderer(sf_path, SAMPLE_RATE), OUTPUT_GAIN
            sf_sha = mf.sha256_file(sf_path)
    except (SoundFontError, TimidityError) as e:
        raise DataError(str(e)) from None
    w = _Writer(out_dir, {} if force else _previous_hashes(out_dir, sf_sha), gain)
    with renderer:
        for s in specs:  # check every preset before writing anything
            if renderer.preset_name(s.bank, s.program) is None:
                raise DataError(f"{sf_path} has no preset bank {s.bank} program {s.program} (for {s.name})")
        for note in progress(notes, len(notes)) if progress else notes:
            digest = w.note(note, note.file, "the SoundFont has no sample for this key",
                            partial(renderer.render, note.instrument.bank, note.instrument.program, note.pitch,
                                    note.velocity, NOTE_OFF_S, DURATION_S))
            if digest is not None:
                kept.append((note, digest))

        splits = split_groups(((n.instrument.name, n.pitch) for n, _ in kept), seed=seed)
        copies: list[mf.Note] = []
        for note, file, k in _shift_plan(kept, splits, shifted, max_shift, seed):
            digest = w.note(note, file, f"key {note.pitch - k} has no sample",
                            partial(sh.render, renderer, note.instrument.bank, note.instrument.program, note.pitch,
                                    note.velocity, k, NOTE_OFF_S, DURATION_S, SAMPLE_RATE))
            if digest is not None:
                copies.append(mf.Note(file, note.instrument.name, note.index, note.pitch, note.velocity,
                                      "train", digest, augment={"shift_semitones": float(k)}))
    manifest = mf.Manifest(
        sample_rate=SAMPLE_RATE,
        note_off_s=NOTE_OFF_S,
        duration_s=DURATION_S,
        soundfont=str(sf_path),
        soundfont_sha256=sf_sha,
        instruments=[mf.Instrument(i, s.name, s.program, s.bank, s.low, s.high) for i, s in enumerate(specs)],
        notes=[
            mf.Note(n.file, n.instrument.name, n.index, n.pitch, n.velocity, splits[(n.instrument.name, n.pitch)], h)
            for n, h in kept
        ] + copies,
        dropped=w.dropped,
    )
    path = manifest.save(out_dir)
    return BuildResult(manifest, path, w.rendered, w.unchanged, time.perf_counter() - t0, w.top, w.total_bytes)


class _Writer:
    """Writes the notes' WAVs into ``out_dir``: a file whose bytes still have the previous manifest's
    sha256 is kept, any other is rendered, checked (clipping fails the build, silence drops the note)
    and written; counts what it did."""

    def __init__(self, out_dir: Path, previous: dict[str, str], gain: float) -> None:
        self.out_dir, self.previous, self.gain = out_dir, previous, gain
        self.dropped: list[mf.Dropped] = []
        self.rendered = self.unchanged = self.total_bytes = 0
        self.top = 0.0

    def note(self, note: PlannedNote, file: str, silent_why: str, render: Callable[[], FloatArray]) -> str | None:
        """The sha256 of ``file``'s bytes (``note`` played by ``render``), or None when it was dropped as silent."""
        target = self.out_dir / file
        old = self.previous.get(file)
        if old is not None and target.is_file():
            data = target.read_bytes()
            if mf.sha256_bytes(data) == old:
                self.top = max(self.top, peak(read_pcm16(data)[0]))
                self.unchanged += 1
                self.total_bytes += len(data)
                return old
        try:
            audio = self.gain * render()
        except (SoundFontError, TimidityError) as e:
            raise DataError(f"{file}: {e}") from None
        level = peak(audio)
        if level >= 1.0:
            raise DataError(f"{file} clips (peak {level:.3f} = {dbfs(level):+.2f} dBFS); "
                            f"lower the output gain ({self.gain}) in {__name__}")
        if dbfs(level) < SILENCE_DBFS:
            self.dropped.append(mf.Dropped(file, note.instrument.name, note.pitch, note.velocity,
                                           f"silent: peak {dbfs(level):.1f} dBFS < {SILENCE_DBFS:.0f} dBFS "
                                           f"({silent_why})"))
            return None
        self.top = max(self.top, level)
        data = encode_pcm16(audio, SAMPLE_RATE)
        atomic_write_bytes(target, data)
        self.rendered += 1
        self.total_bytes += len(data)
        return mf.sha256_bytes(data)


def _shift_plan(kept: Sequence[tuple[PlannedNote, str]], splits: dict[tuple[str, int], mf.Split], copies: int,
                max_shift: int, seed: int) -> list[tuple[PlannedNote, str, int]]:
    """(note, file, shift) of each shifted copy: ``copies`` per training note, each played from a
    training key of the same instrument and velocity (so no held-out key's sample is trained on)."""
    train = {(n.instrument.name, n.pitch, n.velocity) for n, _ in kept
             if splits[(n.instrument.name, n.pitch)] == "train"}
    out = []
    for n, _ in kept:
        if (n.instrument.name, n.pitch, n.velocity) not in train:
            continue
        allowed = {n.pitch - p for (name, p, v) in train if name == n.instrument.name and v == n.velocity}
        stem = n.file[: -len(".wav")]
        for c in range(copies):
            k = sh.draw(f"{stem}_s{c}", allowed, seed, max_shift)
            if k is not None:  # the name carries the shift, so an old file of another shift is never kept
                out.append((n, f"{stem}_s{c}{k:+d}.wav", k))
    return out


def _previous_hashes(out_dir: Path, sf_sha: str) -> dict[str, str]:
    """file -> sha256 from an earlier manifest rendered the same way; {} when there is none usable."""
    try:
        old = mf.load(out_dir)
    except mf.ManifestError:
        return {}
    same = (old.soundfont_sha256 == sf_sha and old.sample_rate == SAMPLE_RATE
            and old.note_off_s == NOTE_OFF_S and old.duration_s == DURATION_S)
    return {n.file: n.sha256 for n in old.notes} if same else {}
