"""Render one isolated note with TiMidity++ from a GUS patch set (freepats), deterministically.

The timbre model learned its instruments from one SoundFont; a second family of recordings,
made another way (Gravis Ultrasound patches, played by another synthesizer), is what teaches it
the instrument rather than the set (issue 17). TiMidity++ reads a ``.cfg`` that maps General MIDI
programs to patch files; each note is a one-note MIDI file rendered to 16-bit mono WAV in a
temporary folder, with TiMidity's reverb and chorus off so that the recording is the patch alone.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import wave
from pathlib import Path
from types import TracebackType

import mido
import numpy as np

from timbrespace.data.wav import FloatArray

#: TiMidity's MIDI clock here: 1,000 ticks a beat at 120 beats a minute, so one tick is 0.5 ms.
TICKS_PER_BEAT = 1000
TEMPO_US = 500_000
_TICK_S = TEMPO_US / 1e6 / TICKS_PER_BEAT
#: Seconds one note may take to render before TiMidity is given up on.
TIMEOUT_S = 30.0


class TimidityError(RuntimeError):
    """TiMidity++ or its patch set cannot be used; the text says which and what to install."""


def programs(cfg: Path) -> dict[tuple[int, int], Path]:
    """(bank, program) -> patch file, for the melodic programs ``cfg`` maps (its ``dir`` lines
    resolve the paths; drum sets and ``source`` lines of other files are not followed)."""
    text = cfg.read_text(errors="replace")
    dirs = [Path(m) for m in re.findall(r"^\s*dir\s+(\S+)", text, re.MULTILINE)] or [cfg.parent]
    out: dict[tuple[int, int], Path] = {}
    bank: int | None = None
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if words[0] == "bank" and len(words) > 1 and words[1].isdigit():
            bank = int(words[1])
        elif words[0] == "drumset":
            bank = None
        elif bank is not None and words[0].isdigit() and len(words) > 1:
            name = words[1] if words[1].endswith(".pat") else words[1] + ".pat"
            found = next((d / name for d in dirs if (d / name).is_file()), dirs[0] / name)
            out[(bank, int(words[0]))] = found
    return out


def patch_set_sha256(cfg: Path, used: list[Path]) -> str:
    """One hash of the config and of the patch files the notes use (what the notes depend on)."""
    h = hashlib.sha256(cfg.read_bytes())
    for p in sorted(used):
        h.update(p.name.encode())
        h.update(p.read_bytes() if p.is_file() else b"missing")
    return h.hexdigest()


class TimidityRenderer:
    """Renders notes through the ``timidity`` program with the patch set ``cfg``."""

    def __init__(self, cfg: str | os.PathLike[str], sample_rate: int) -> None:
        self.path = Path(cfg)
        if not self.path.is_file():
            raise TimidityError(f"TiMidity++ config {self.path} does not exist (apt-get install timidity freepats)")
        exe = shutil.which("timidity")
        if exe is None:
            raise TimidityError("TiMidity++ is not installed (apt-get install timidity freepats)")
        self._exe = exe
        self.sample_rate = sample_rate
        self.programs = programs(self.path)
        self._tmp = tempfile.TemporaryDirectory(prefix="timbrespace-timidity-")

    def __enter__(self) -> TimidityRenderer:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Remove the temporary folder."""
        self._tmp.cleanup()

    def preset_name(self, bank: int, program: int) -> str | None:
        """The patch file's name for (bank, program), or None when the set has none (or it is missing)."""
        patch = self.programs.get((bank, program))
        return patch.stem if patch is not None and patch.is_file() else None

    def render(self, bank: int, program: int, pitch: int, velocity: int, note_off_s: float, duration_s: float
               ) -> FloatArray:
        """One note: note-on at 0, note-off at ``note_off_s`` (to the 0.5 ms tick), ``duration_s`` of
        mono float audio (zero-padded should TiMidity stop earlier)."""
        if self.preset_name(bank, program) is None:
            raise TimidityError(f"{self.path} has no patch for bank {bank} program {program}")
        mid = mido.MidiFile(type=0, ticks_per_beat=TICKS_PER_BEAT)
        track = mido.MidiTrack()
        mid.tracks.append(track)
        off = round(note_off_s / _TICK_S)
        tail = max(0, round(duration_s / _TICK_S) - off)
        track += [
            mido.MetaMessage("set_tempo", tempo=TEMPO_US, time=0),
            mido.Message("control_change", control=0, value=bank, time=0),
            mido.Message("program_change", program=program, time=0),
            mido.Message("note_on", note=pitch, velocity=velocity, time=0),
            mido.Message("note_off", note=pitch, velocity=0, time=off),
            mido.MetaMessage("end_of_track", time=tail),
        ]
        folder = Path(self._tmp.name)
        src, out = folder / "note.mid", folder / "note.wav"
        mid.save(src)
        cmd = [self._exe, "-c", str(self.path), "-Ow", "--output-mono", "-s", str(self.sample_rate),
               "-EFreverb=0", "-EFchorus=0", "-o", str(out), str(src)]
        try:
            run = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            raise TimidityError(f"TiMidity++ took over {TIMEOUT_S:.0f} s for one note") from None
        if run.returncode != 0 or not out.is_file():
            raise TimidityError(f"TiMidity++ failed (exit {run.returncode}): {run.stderr.strip()[-300:]}")
        with wave.open(str(out), "rb") as w:
            if (w.getnchannels(), w.getsampwidth(), w.getframerate()) != (1, 2, self.sample_rate):
                raise TimidityError(f"TiMidity++ wrote {w.getnchannels()} channel(s), {8 * w.getsampwidth()} "
                                    f"bit, {w.getframerate()} Hz; expected mono 16-bit {self.sample_rate} Hz")
            pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        n = round(duration_s * self.sample_rate)
        audio = np.zeros(n, np.float32)
        audio[: min(n, len(pcm))] = pcm[:n].astype(np.float32) / 32768.0
        return audio
