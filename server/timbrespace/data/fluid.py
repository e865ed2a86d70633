"""Render one isolated note from a SoundFont with libfluidsynth, in-process and deterministically.

pyfluidsynth gives the library and its Synth wrapper; a few calls it does not wrap (float output,
sharing a loaded SoundFont between synths, quieting the log) are declared here on the same library.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from timbrespace.data.wav import FloatArray

#: FluidSynth applies MIDI events only between its fixed 64-frame blocks.
BLOCK = 64
_FLUID_WARN = 2


class SoundFontError(RuntimeError):
    """The SoundFont or one of its presets cannot be used."""


def _lib() -> tuple[Any, Any]:
    try:
        import fluidsynth
    except ImportError as e:  # the package is there but libfluidsynth is not
        raise SoundFontError(
            f"libfluidsynth is not available ({e}); install it: apt-get install fluidsynth libfluidsynth3"
        ) from None
    lib = ctypes.CDLL(fluidsynth.lib)
    vp, ci = ctypes.c_void_p, ctypes.c_int
    for name, res, args in [
        ("fluid_synth_write_float", ci, [vp, ci, vp, ci, ci, vp, ci, ci]),
        ("fluid_synth_get_sfont_by_id", vp, [vp, ci]),
        ("fluid_synth_add_sfont", ci, [vp, vp]),
        ("fluid_synth_remove_sfont", ci, [vp, vp]),
        ("fluid_set_log_function", vp, [ci, vp, vp]),
    ]:
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = res, args
    return fluidsynth, lib


class FluidRenderer:
    """Loads a SoundFont once; renders each note in a brand-new synth that shares it.

    A synth reused across notes leaks state: voices killed by all-sounds-off still sound in the next
    block, and a recycled voice's filter history differs from a fresh one, so a note would depend on
    the note before it. A new synth per note costs about 5 ms; reloading the 140 MB SoundFont into
    each would cost a second, hence ``fluid_synth_add_sfont`` to share the loaded one.
    """

    def __init__(self, soundfont: str | os.PathLike[str], sample_rate: int) -> None:
        self.path = Path(soundfont)
        if not self.path.is_file():
            raise SoundFontError(f"SoundFont {self.path} does not exist (expected an .sf2 file)")
        self.sample_rate = sample_rate
        self._fs, self._lib = _lib()
        self._holder = self._new_synth()
        sfid = self._holder.sfload(str(self.path))
        if sfid < 0:
            self._holder.delete()
            raise SoundFontError(f"{self.path} is not a SoundFont FluidSynth can load")
        self._sfid = sfid
        self._sfont = self._lib.fluid_synth_get_sfont_by_id(self._holder.synth, sfid)

    def __enter__(self) -> FluidRenderer:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Free the SoundFont and its holder synth."""
        if self._holder is not None:
            self._holder.delete()
            self._holder = None

    def preset_name(self, bank: int, program: int) -> str | None:
        """The SoundFont's name for (bank, program), or None when it has no such preset."""
        name = self._holder.sfpreset_name(self._sfid, bank, program)
        return name if isinstance(name, str) else None

    def render(self, bank: int, program: int, pitch: int, velocity: int, note_off_s: float, duration_s: float
               ) -> FloatArray:
        """One note: note-on at frame 0, note-off at ``note_off_s``, ``duration_s`` of mono float audio.

        The note-off lands on the nearest 64-frame block boundary (1.5 s -> 1.5006 s at 22050 Hz);
        the left and right outputs are averaged to mono.
        """
        n = round(duration_s * self.sample_rate)
        off = BLOCK * round(note_off_s * self.sample_rate / BLOCK)
        total = BLOCK * -(-n // BLOCK)  # whole blocks, so nothing is left buffered inside FluidSynth
        buf = np.zeros((total, 2), np.float32)
        synth = self._new_synth()
        sfid = -1
        try:
            sfid = self._lib.fluid_synth_add_sfont(synth.synth, self._sfont)
            if synth.program_select(0, sfid, bank, program) != 0:
                raise SoundFontError(f"{self.path} has no preset bank {bank} program {program}")
            synth.noteon(0, pitch, velocity)
            self._write(synth, buf, 0, off)
            synth.noteoff(0, pitch)
            self._write(synth, buf, off, total)
        finally:
            if sfid >= 0:
                # Removing resets every channel's program and warns once per channel; quiet that.
                self._lib.fluid_set_log_function(_FLUID_WARN, None, None)
                self._lib.fluid_synth_remove_sfont(synth.synth, self._sfont)
                self._lib.fluid_set_log_function(
                    _FLUID_WARN, ctypes.cast(self._lib.fluid_default_log_function, ctypes.c_void_p), None
                )
            synth.delete()  # after the remove, so the shared SoundFont is not freed with it
        return np.ascontiguousarray(buf[:n].mean(axis=1, dtype=np.float32))

    def _new_synth(self) -> Any:
        return self._fs.Synth(
            gain=1.0,
            samplerate=float(self.sample_rate),
            channels=16,
            **{"synth.reverb.active": 0, "synth.chorus.active": 0, "synth.cpu-cores": 1,
               "synth.dynamic-sample-loading": 0},
        )

    def _write(self, synth: Any, buf: FloatArray, start: int, stop: int) -> None:
        base = buf.ctypes.data + start * buf.strides[0]
        step = buf.itemsize
        rc = self._lib.fluid_synth_write_float(synth.synth, stop - start, base, 0, 2, base + step, 0, 2)
        if rc != 0:
            raise SoundFontError(f"fluid_synth_write_float failed ({rc})")
