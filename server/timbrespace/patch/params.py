"""amSynth's 41 parameters: names, ranges, steps, laws and value names.

The table follows amSynth's own parameter specification (name, default, min,
max, step, law, base, offset), in amSynth's parameter order, which is also
the column order of every patch vector in this project.  Values are always in
the units of amSynth's bank files; ``control_value`` gives the physical value
(seconds, Hz, ratio) with amSynth's laws.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

import numpy as np
import numpy.typing as npt


class Law(Enum):
    """How a stored value maps to its control value (amSynth's ParameterLaw)."""

    LINEAR = "linear"  # offset + base * v
    EXPONENTIAL = "exponential"  # offset + base ** v
    POWER = "power"  # offset + v ** base


@dataclass(frozen=True)
class ParamSpec:
    """One amSynth parameter."""

    name: str
    default: float
    minimum: float
    maximum: float
    step: float = 0.0
    law: Law = Law.LINEAR
    base: float = 1.0
    offset: float = 0.0
    label: str = ""
    choices: tuple[str, ...] = ()
    doc: str = ""

    @property
    def categorical(self) -> bool:
        """True for switch-like parameters whose values name choices."""
        return bool(self.choices)

    def clamp(self, value: float) -> float:
        """Clamp and quantise ``value`` the way amSynth's Parameter::setValue does."""
        v = min(max(float(value), self.minimum), self.maximum)
        if self.step > 0.0:
            # Halves round up, as amSynth's roundf does (Python's round() would go to even).
            v = self.minimum + math.floor((v - self.minimum) / self.step + 0.5) * self.step
        return v

    def control_value(self, value: float) -> float:
        """The physical value amSynth's DSP sees for a stored value."""
        if self.law is Law.LINEAR:
            return self.offset + self.base * value
        if self.law is Law.EXPONENTIAL:
            return float(self.offset + self.base**value)
        return float(self.offset + math.copysign(abs(value) ** self.base, value))


def _time(name: str, doc: str) -> ParamSpec:
    return ParamSpec(name, 0.0, 0.0, 2.5, 0.0, Law.POWER, 3.0, 0.0005, "s", doc=doc)


_WAVES = ("sine", "pulse", "saw", "noise", "sample_hold")

PARAMS: tuple[ParamSpec, ...] = (
    _time("amp_attack", "amplitude envelope attack"),
    _time("amp_decay", "amplitude envelope decay"),
    ParamSpec("amp_sustain", 1.0, 0.0, 1.0, doc="amplitude envelope sustain level"),
    _time("amp_release", "amplitude envelope release"),
    ParamSpec("osc1_waveform", 2.0, 0.0, 4.0, 1.0, choices=_WAVES, doc="oscillator 1 waveform"),
    _time("filter_attack", "filter envelope attack"),
    _time("filter_decay", "filter envelope decay"),
    ParamSpec("filter_sustain", 1.0, 0.0, 1.0, doc="filter envelope sustain level"),
    _time("filter_release", "filter envelope release"),
    ParamSpec("filter_resonance", 0.0, 0.0, 0.97, doc="filter resonance"),
    ParamSpec("filter_env_amount", 0.0, -16.0, 16.0, doc="filter envelope amount (x cutoff)"),
    ParamSpec(
        "filter_cutoff", 1.5, -0.5, 1.5, 0.0, Law.EXPONENTIAL, 16.0, doc="filter cutoff (16**v x key freq)"
    ),
    ParamSpec("osc2_detune", 0.0, -1.0, 1.0, 0.0, Law.EXPONENTIAL, 1.25, doc="oscillator 2 detune (1.25**v ratio)"),
    ParamSpec("osc2_waveform", 2.0, 0.0, 4.0, 1.0, choices=_WAVES, doc="oscillator 2 waveform"),
    ParamSpec("master_vol", 0.67, 0.0, 1.0, 0.0, Law.POWER, 2.0, doc="master volume (v**2 gain)"),
    ParamSpec("lfo_freq", 0.0, 0.0, 7.5, 0.0, Law.POWER, 2.0, label="Hz", doc="LFO rate (v**2 Hz)"),
    ParamSpec(
        "lfo_waveform",
        0.0,
        0.0,
        6.0,
        1.0,
        choices=("sine", "square", "triangle", "noise", "sample_hold", "saw_up", "saw_down"),
        doc="LFO waveform",
    ),
    ParamSpec(
        "osc2_range", 0.0, -3.0, 4.0, 1.0, Law.EXPONENTIAL, 2.0, doc="oscillator 2 octave (2**v ratio)"
    ),
    ParamSpec("osc_mix", 0.0, -1.0, 1.0, doc="oscillator mix, -1 osc1 only, +1 osc2 only"),
    ParamSpec(
        "freq_mod_amount", 0.0, 0.0, 1.25992105, 0.0, Law.POWER, 3.0, -1.0, doc="LFO to oscillator pitch"
    ),
    ParamSpec("filter_mod_amount", -1.0, -1.0, 1.0, doc="LFO to filter cutoff"),
    ParamSpec("amp_mod_amount", -1.0, -1.0, 1.0, doc="LFO to amplitude"),
    ParamSpec("osc_mix_mode", 0.0, 0.0, 1.0, doc="ring modulation amount (0 mix, 1 ring)"),
    ParamSpec("osc1_pulsewidth", 1.0, 0.0, 1.0, doc="oscillator 1 pulse width / saw shape"),
    ParamSpec("osc2_pulsewidth", 1.0, 0.0, 1.0, doc="oscillator 2 pulse width / saw shape"),
    ParamSpec("reverb_roomsize", 0.0, 0.0, 1.0, doc="reverb room size"),
    ParamSpec("reverb_damp", 0.0, 0.0, 1.0, doc="reverb damping"),
    ParamSpec("reverb_wet", 0.0, 0.0, 1.0, doc="reverb wet level"),
    ParamSpec("reverb_width", 1.0, 0.0, 1.0, doc="reverb stereo width"),
    ParamSpec("distortion_crunch", 0.0, 0.0, 0.9, doc="distortion amount"),
    ParamSpec("osc2_sync", 0.0, 0.0, 1.0, 1.0, choices=("off", "on"), doc="hard-sync oscillator 2 to 1"),
    ParamSpec("portamento_time", 0.0, 0.0, 1.0, doc="portamento (glide) time"),
    ParamSpec(
        "keyboard_mode", 0.0, 0.0, 2.0, 1.0, choices=("poly", "mono", "legato"), doc="keyboard mode"
    ),
    ParamSpec("osc2_pitch", 0.0, -12.0, 12.0, 1.0, doc="oscillator 2 transpose in semitones"),
    ParamSpec(
        "filter_type",
        0.0,
        0.0,
        4.0,
        1.0,
        choices=("lowpass", "highpass", "bandpass", "notch", "bypass"),
        doc="filter type",
    ),
    ParamSpec("filter_slope", 1.0, 0.0, 1.0, 1.0, choices=("12db", "24db"), doc="filter slope"),
    ParamSpec(
        "freq_mod_osc", 0.0, 0.0, 2.0, 1.0, choices=("osc1+2", "osc1", "osc2"), doc="LFO pitch target"
    ),
    ParamSpec("filter_kbd_track", 1.0, 0.0, 1.0, doc="filter key tracking"),
    ParamSpec("filter_vel_sens", 1.0, 0.0, 1.0, doc="filter velocity sensitivity"),
    ParamSpec("amp_vel_sens", 1.0, 0.0, 1.0, doc="amplitude velocity sensitivity"),
    ParamSpec(
        "portamento_mode", 0.0, 0.0, 1.0, 1.0, choices=("always", "legato"), doc="when portamento applies"
    ),
)

N_PARAMS = len(PARAMS)
NAMES: tuple[str, ...] = tuple(p.name for p in PARAMS)
INDEX: dict[str, int] = {p.name: i for i, p in enumerate(PARAMS)}
DEFAULTS: npt.NDArray[np.float64] = np.array([p.default for p in PARAMS], dtype=np.float64)
MINIMA: npt.NDArray[np.float64] = np.array([p.minimum for p in PARAMS], dtype=np.float64)
MAXIMA: npt.NDArray[np.float64] = np.array([p.maximum for p in PARAMS], dtype=np.float64)
CATEGORICAL: tuple[int, ...] = tuple(i for i, p in enumerate(PARAMS) if p.categorical)
CONTINUOUS: tuple[int, ...] = tuple(i for i, p in enumerate(PARAMS) if not p.categorical)


def spec(name: str) -> ParamSpec:
    """The spec of parameter ``name``; KeyError names the valid choices."""
    try:
        return PARAMS[INDEX[name]]
    except KeyError:
        raise KeyError(f"unknown amSynth parameter {name!r}; expected one of: {', '.join(NAMES)}") from None


def clamp_vector(values: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Clamp and quantise a full patch vector (shape ``(41,)``) to amSynth's ranges."""
    v = np.asarray(values, dtype=np.float64)
    if v.shape != (N_PARAMS,):
        raise ValueError(f"a patch vector has {N_PARAMS} values, got shape {v.shape}")
    return np.array([p.clamp(x) for p, x in zip(PARAMS, v)], dtype=np.float64)


assert N_PARAMS == 41, "amSynth has 41 parameters"
