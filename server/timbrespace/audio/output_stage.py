"""amSynth's output stage, after the summed voices: distortion, stereo Freeverb and soft limiter.

Follows amSynth 1.13.2 (``VoiceAllocationUnit``, its ``Distortion``, ``revmodel`` and ``SoftLimiter``). What differs:

* pyo's Freeverb: amSynth's algorithm and constants (mapped), but every pyo
  instance has the same delays, so the right channel is decorrelated by two
  short allpasses instead of amSynth's +23-sample delays; tails come out 3-4.4 dB
  louder than amSynth's (more with room size) and damping acts less strongly
  (measured: docs/fidelity.md).
* The limiter's peak follower decays towards the signal, not towards 0, between
  peaks; a final clip at +-1 is a safety net (amSynth has none).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pyo

from timbrespace.audio.voice import fade_in_points

LIMIT = 0.9  # amSynth's SoftLimiter threshold on |L| + |R|
LIMIT_RISE_TAU_S = 0.0001 / 2.2  # SoftLimiter attack time constant (AT = 0.1 ms)
LIMIT_FALL_TAU_S = 0.5 / 2.2  # SoftLimiter release time constant (RT = 0.5 s)
# Freeverb: amSynth scales room by 0.28 and damping by 0.4, pyo by 0.29 and 0.5.
ROOM_SCALE = 0.28 / 0.29
DAMP_SCALE = 0.4 / 0.5
#: The ramped signals the stage reads, by the names ``build`` gives them.
SIGNALS = frozenset({"crunch", "size", "damp", "dry", "w1", "w2"})


@dataclass(frozen=True)
class OutputStage:
    """The stereo output and every pyo object it needs kept alive."""

    output: pyo.PyoObject
    keep: tuple[object, ...]


def build(voices: Sequence[pyo.PyoObject], sample_rate: float,
          signal: Callable[[str, float], pyo.SigTo]) -> OutputStage:
    """The stage over ``voices``; ``signal(name, initial)`` makes each of :data:`SIGNALS` (the
    synth sets them from the patch)."""
    mono = pyo.Mix(list(voices), voices=1)
    # A fresh amSynth smooths its distortion exponent (from 1) and its reverb's dry level
    # (from 0) over its first ~20 ms (0.5% a sample; measured): replay it from here.
    boot = pyo.Linseg(fade_in_points(sample_rate))
    boot.play()
    # Distortion: sign(x)|x|**c = x * |x|**(c - 1), c = 1 - crunch (>= 0.1 here).
    dist = mono * pyo.Pow(pyo.Abs(mono) + 1e-9, pyo.Sig(boot, mul=signal("crunch", 0.0)))
    # revmodel::processmix in place: out = in*(1 + dry) + wet1*revL + wet2*revR, the
    # reverbs fed with L + R = 2*in (so pyo's wet, fed with in, counts twice).  pyo's
    # Freeverbs all share one set of delays where amSynth's right channel has its own
    # (+23 samples): two short allpasses decorrelate the right input instead (L/R
    # correlation of the tails ~0.2 as in amSynth, measured, at equal level).
    right_in = pyo.Allpass(pyo.Allpass(dist, 0.0023, 0.5, maxdelay=0.01), 0.0031, 0.5, maxdelay=0.01)
    size, damp = signal("size", 0.0), signal("damp", 0.0)
    rl, rr = (pyo.Freeverb(x, size, damp, 1.0) for x in (dist, right_in))
    dry = pyo.Sig(boot, mul=signal("dry", 1.0), add=1.0)
    w1, w2 = signal("w1", 0.0), signal("w2", 0.0)
    left = dist * dry + rl * w1 + rr * w2
    right = dist * dry + rr * w1 + rl * w2
    # SoftLimiter: gain = 0.9 / xpeak above 0.9, xpeak following |L| + |R| with amSynth's
    # 0.1 ms attack (short peaks get through, as in amSynth) and 0.5 s release.  pyo's
    # Follower2 time constant is its time argument / 2 pi.
    level = pyo.Abs(left) + pyo.Abs(right)
    peak = pyo.Follower2(level, 2.0 * math.pi * LIMIT_RISE_TAU_S, 2.0 * math.pi * LIMIT_FALL_TAU_S)
    gain = LIMIT / pyo.Max(peak, LIMIT)
    output = pyo.Clip([left * gain, right * gain], -1.0, 1.0)
    return OutputStage(output, (mono, boot, dist, right_in, rl, rr, dry, left, right, level, peak, gain))
