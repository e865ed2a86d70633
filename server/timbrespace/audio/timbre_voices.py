"""The audio side of the timbre engine: frame slots to additive voices.

The control side chooses each note's slot (= voice), decodes its frames and writes them to
:class:`~timbrespace.link.frames.FrameSlots`; a ``VOICE`` command starts or releases the
slot's voice.  At every block :meth:`TimbreVoices.block` takes the frames written since the
last one: a few array copies and pyo setter calls, no allocation.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from timbrespace.audio.additive import AdditiveSynth
from timbrespace.audio.parts import CHANNELS, AudioContext, AudioPart
from timbrespace.link.frames import FrameSlots


class TimbreVoices:
    """Applies frames and voice commands to an :class:`AdditiveSynth`."""

    def __init__(self, synth: AdditiveSynth, frames: FrameSlots, release_s: float) -> None:
        if len(synth.voices) != frames.slots:
            raise ValueError(f"{frames.slots} frame slots for {len(synth.voices)} voices")
        self.synth = synth
        self.frames = frames
        self.release_s = float(release_s)
        self._tables: npt.NDArray[np.float32] = np.zeros((frames.slots, frames.table_size), np.float32)
        self._noise: npt.NDArray[np.float32] = np.zeros((frames.slots, frames.n_noise), np.float32)
        self._f0 = np.zeros(frames.slots)
        self._sounding = np.zeros(frames.slots, dtype=bool)  # mask of the noise rows heard
        self._started: set[int] = set()  # the same slots, to visit without numpy at every block

    def block(self) -> None:
        """Take new frames: sounding voices crossfade to them; the noise bank follows."""
        changed = False
        for slot in self.frames.changed():
            got = self.frames.take(slot, self._tables[slot], self._noise[slot])
            if got is None:
                continue
            f0 = got[0]
            voice = self.synth.voices[slot]
            if not voice.silent and voice.key == slot:
                if f0 != self._f0[slot]:
                    voice.glide(f0, 0.0)
                voice.frame(self._tables[slot])
            self._f0[slot] = f0
            changed = True
        for i in [i for i in self._started if self.synth.voices[i].silent]:  # their release ended
            self._started.discard(i)
            self._sounding[i] = False
            changed = True
        if changed:
            self.synth.set_noise(self._noise * self._sounding[:, None])

    def voice(self, slot: int, level: float) -> None:
        """Start ``slot``'s voice from its newest frame (level > 0) or release it (0)."""
        if not 0 <= slot < self.frames.slots:
            return
        if level <= 0.0:
            self.synth.voices[slot].release()
            return
        got = self.frames.take(slot, self._tables[slot], self._noise[slot])  # the note's first frame
        if got is not None:  # else block() took it already
            self._f0[slot] = got[0]
        v = self.synth.voices[slot]
        v.start(slot, float(self._f0[slot]), level, self._tables[slot], self.release_s)
        self._sounding[slot] = True
        self._started.add(slot)
        self.synth.set_noise(self._noise * self._sounding[:, None])

    def all_off(self) -> None:
        """Release every voice."""
        for v in self.synth.voices:
            if not v.silent:
                v.release()

    def reconcile(self, held: int) -> None:
        """Release every held voice whose slot is not set in the ``held`` bit mask (the control side's)."""
        for slot, v in enumerate(self.synth.voices):
            if v.held and not v.silent and not (held >> slot) & 1:
                v.release()

    def cut(self, slots: int) -> None:
        """Release the voices of the slots set in ``slots`` (the timbre voices' release is already short)."""
        for slot, v in enumerate(self.synth.voices):
            if not v.silent and (slots >> slot) & 1:
                v.release()

    @property
    def active_voices(self) -> int:
        """Voices sounding or releasing."""
        return self.synth.active_voices


def engine_part(ctx: AudioContext) -> AudioPart:
    """The timbre engine's voices on its frame slots (its AudioPlan, engines/timbre_setup.py)."""
    frames = ctx.frames
    if frames is None:
        raise ValueError("the timbre voices need frame slots")
    s = ctx.settings
    additive = AdditiveSynth(frames.slots, ctx.sample_rate, s["noise_centres_hz"], table_size=frames.table_size,
                             channels=CHANNELS)
    additive.gain.setValue(s["gain"])
    return AudioPart(additive.output, {"timbre": TimbreVoices(additive, frames, s["release_s"])})
