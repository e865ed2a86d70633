"""One amSynth voice (amSynth 1.13's ``VoiceBoard``) as a prebuilt pyo graph.

Signal flow, as in ``VoiceBoard::ProcessSamplesMix``::

    key freq (Linseg: portamento) ─┬─ x (1 + fm1*lfo) ───────── osc1 ─┐
    LFO (per voice, phase reset) ──┤                                   ├ mix + ring ─ biquad ─ x amp ─ out
                                   └─ x ratio2 (1 + fm2*lfo) ── osc2 ─┘   (lp/hp/bp/notch, 12/24 dB)
    cutoff = 16**c * blend(261.6 Hz, f, kbd) * blend(1, vel, vs) * lfo mult, then + f*env*amount
             (amount > 0) or * (1 + amount/16*env) (amount < 0), clamped to [10 Hz, 0.99 Nyquist]
    amp    = ADSR * blend(1, vel, vs) * lfo mult * master, through amSynth's VCA low-pass

Every patch-dependent quantity is a per-synth :class:`Shared` control signal (a
``SigTo`` ramp) that all voices read, so a patch change never loops over voices.
The graph is built once; notes only call the base (C) objects' setters, ~0.1-1
us each where pyo's Python properties cost 5-20 us.  A silent voice stops every
object it owns: a stopped pyo object costs ~6 ns a block, a running one ~0.1-5 us.

Envelopes: amSynth's linear ADSR is two pyo ``Adsr``, ``e1`` (sustain 1) times S
plus ``e0`` (sustain 0) times 1 - S: the sum attacks from the current level,
decays to S and releases linearly like amSynth's, and S can follow patch changes
smoothly on sounding voices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pyo

from timbrespace.audio import waves

# amSynth low-passes the amplitude control signal (no clicks).  Its kVCALowPassFreq is 4 kHz,
# but IIRFilterFirstOrder's pole is exp(-pi/2 * fc/sr), a 1 kHz one-pole: exactly pyo's
# Tone(1000) (pole exp(-2 pi f/sr)).  Measured on amSynth 1.13.2 as well.
VCA_LOWPASS_HZ = 1000.0
KEY_TRACK_BASE_HZ = 261.626  # middle C: the cutoff base with key tracking at 0
VOLUME_SMOOTHING = 0.005  # amSynth's ParamSmoother step per sample
MIN_CUTOFF_HZ = 10.0  # SynthFilter's lower clamp
CONTROL_CHUNK = 64  # amSynth's VoiceBoard computes pitch and cutoff once per this many samples
MAX_CUTOFF_NYQUIST = 0.99  # SynthFilter's upper clamp, a share of Nyquist ("unstable at PI")
KILL_RELEASE_S = 0.005  # release used to silence a voice "at once" without a click
BYPASS = 4  # amSynth's filter_type value for "bypass"


def base(obj: Any) -> Any:
    """The C object behind a one-stream PyoObject (its setters are ~50x cheaper)."""
    return obj._base_objs[0]


def fade_in_points(sr: float, segments: int = 12) -> list[tuple[float, float]]:
    """Linseg points of ``1 - (1 - 0.005)**n``, amSynth's smoothers starting from 0 (error < 1%)."""
    tau = -1.0 / (sr * math.log(1.0 - VOLUME_SMOOTHING))  # seconds
    times = [tau * 6.0 * (k / segments) ** 1.5 for k in range(segments + 1)]  # denser early on
    return [(t, 1.0 - math.exp(-t / tau)) for t in times[:-1]] + [(times[-1], 1.0)]


@dataclass
class Shared:
    """Per-synth control signals and tables that every voice reads (built by the synth)."""

    osc1_table: pyo.DataTable  # integrated waveform (waves.osc_integral)
    osc2_table: pyo.DataTable
    osc1_dc: pyo.PyoObject  # the waveform's mean, added back after the box filter
    osc2_dc: pyo.PyoObject
    phase_table: pyo.DataTable  # identity ramp: osc2's resettable phase
    lfo_table: pyo.DataTable
    lfo_rate: pyo.PyoObject  # Hz
    fm1: pyo.PyoObject  # LFO -> osc1 pitch depth (0..1)
    fm2r: pyo.PyoObject  # LFO -> osc2 pitch depth times osc2's ratio
    ratio2: pyo.PyoObject  # osc2 frequency ratio: detune * octave * semitones
    mix1: pyo.PyoObject  # osc1 level (1 - ring)(1 - mix)/2
    mix2: pyo.PyoObject  # osc2 level (1 - ring)(1 + mix)/2
    ring: pyo.PyoObject  # ring modulation level
    cut_key: pyo.PyoObject  # 16**cutoff * kbd: Hz of cutoff per Hz of key
    cut_fixed: pyo.PyoObject  # 16**cutoff * 261.6 * (1 - kbd)
    filter_vel: pyo.PyoObject  # filter velocity sensitivity
    filter_lfo_depth: pyo.PyoObject  # A/2 of amSynth's (lfo*0.5+0.5)*A + 1 - A
    filter_lfo_offset: pyo.PyoObject  # 1 - A/2
    env_down: pyo.PyoObject  # min(env amount, 0) / 16: cutoff scale per unit of filter env
    env_up: pyo.PyoObject  # max(env amount, 0): Hz per Hz of key per unit of filter env
    q: pyo.PyoObject
    filter_sus: pyo.PyoObject
    filter_sus_rest: pyo.PyoObject  # 1 - filter sustain (0 when amSynth attacks straight to S)
    amp_sus: pyo.PyoObject
    amp_sus_rest: pyo.PyoObject
    amp_lfo_depth: pyo.PyoObject
    amp_lfo_offset: pyo.PyoObject
    amp_vel: pyo.PyoObject  # amp velocity sensitivity
    gain: pyo.PyoObject  # master volume (v**2) times the switch duck


@dataclass(frozen=True)
class Modes:
    """Which sources and switches are live; the synth changes them under a short duck."""

    osc1: int = waves.OSC_SAW  # amSynth waveform values
    osc2: int = waves.OSC_SAW
    lfo: int = waves.LFO_SINE
    sync: bool = False
    filter_type: int = 0  # 0 lp, 1 hp, 2 bp, 3 notch, 4 bypass
    stages: int = 2  # 1: 12 dB/oct, 2: 24 dB/oct

    def sources(self) -> set[str]:
        """Names of the voice's switchable sources these modes need."""
        want = {"lfo_rand" if self.lfo in (waves.LFO_NOISE, waves.LFO_SAMPLE_HOLD) else "lfo_tab"}
        for n, kind in (("osc1", self.osc1), ("osc2", self.osc2)):
            want.add(f"{n}_rand" if kind in (waves.OSC_NOISE, waves.OSC_SAMPLE_HOLD) else f"{n}_tab")
        if self.sync:
            want.add("sync")
        if self.filter_type != BYPASS:
            want.add("filter")
        return want


@dataclass(frozen=True)
class EnvTimes:
    """ADSR segment times in seconds (amSynth latches them when a segment starts)."""

    attack: float
    decay: float
    release: float


class _Env:
    """amSynth's linear ADSR as ``e1 * S + e0 * (1 - S)``."""

    def __init__(self, sus: pyo.PyoObject, rest: pyo.PyoObject) -> None:
        self.e1 = pyo.Adsr(0.001, 0.001, 1.0, 0.001, mul=sus)
        self.e0 = pyo.Adsr(0.001, 0.001, 0.0, 0.001, mul=rest)
        self.out = self.e1 + self.e0
        self.bases = (base(self.e1), base(self.e0))

    def on(self, times: EnvTimes) -> None:
        for b in self.bases:
            b.setAttack(times.attack)
            b.setDecay(times.decay)
            b.play()

    def off(self, release: float) -> None:
        for b in self.bases:
            b.setRelease(release)
            b.stop()  # in pyo's "wait" mode stop() starts the release


def _boxcar(
    integral: pyo.DataTable, phase: pyo.PyoObject, freq: pyo.PyoObject, dc: pyo.PyoObject, sr: float
) -> pyo.PyoObject:
    """The waveform averaged over the last phase increment (see ``waves``).

    Both table reads take their phase from ``phase`` itself, so a phase reset (note
    start, sync) needs no state: the look-back is always exactly one increment.
    """
    now = pyo.Pointer(integral, phase)
    before = pyo.Pointer(integral, pyo.Sig(freq, mul=-1.0 / sr, add=phase))
    # Below 1 Hz the difference of two nearly equal float32 reads is noise: let it fade out.
    per_increment = sr / pyo.Max(freq, 1.0)
    return pyo.Sig(now - before, mul=per_increment, add=dc)


class Voice:
    """A prebuilt voice; the synth calls :meth:`start`, :meth:`release`, :meth:`glide`."""

    def __init__(self, sh: Shared, sample_rate: float, on_silent: Any) -> None:
        self.silent = True
        self.key = -1  # the MIDI note that owns the voice (for note-off matching)
        self.order = 0  # note-on counter when last triggered (voice stealing)
        self.held = False
        self.hz = 440.0  # last target frequency
        self.velocity = 1.0  # 0..1, kept when a mono voice moves to another held key (amSynth too)
        sr = sample_rate
        self._server = base(sh.gain).getServer()
        self._marks: list[tuple[int, str]] = []  # (stream index, group): see _split
        self._mark("always")

        # Key frequency; a Linseg can restart from any value (portamento from the last note).
        self.freq = pyo.Linseg([(0.0, 440.0), (0.001, 440.0)])

        # LFO, one per voice as in amSynth, phase reset when a silent voice starts.  Noise
        # and sample-and-hold are one Randh: new values at the LFO rate, or at every sample.
        self._mark("lfo_tab")
        self.lfo_ph = pyo.Phasor(sh.lfo_rate)
        lfo_tab = pyo.Pointer(sh.lfo_table, self.lfo_ph)
        self._mark("lfo_rand")
        self.lfo_rand = pyo.Randh(-1.0, 1.0, sh.lfo_rate)
        # amSynth reads its LFO once per 64-sample chunk for the cutoff.  Noise at every sample
        # on the cutoff of a resonant biquad near Nyquist blows it up (NaN in 3 factory presets):
        # the cutoff gets the random LFO held per 64 samples, as amSynth's is.
        self.lfo_rand_chunk = pyo.Degrade(self.lfo_rand, 32, 1.0 / CONTROL_CHUNK)
        self._mark("always")
        lfo = lfo_tab + self.lfo_rand
        lfo_cut = lfo_tab + self.lfo_rand_chunk

        # Oscillator frequencies: amSynth's f * (amount * (lfo + 1) + 1 - amount).
        f1 = self.freq * pyo.Sig(lfo, mul=sh.fm1, add=1.0)
        f2 = self.freq * pyo.Sig(lfo, mul=sh.fm2r, add=sh.ratio2)

        # amSynth's oscillators advance their phase before output, so osc1's phasor is offset
        # by one increment (or a detune-0 unison with osc2 would comb-filter).
        self._mark("osc1_tab")
        self.ph1 = pyo.Phasor(f1, phase=pyo.Sig(f1, mul=1.0 / sr))
        osc1_tab = _boxcar(sh.osc1_table, self.ph1, f1, sh.osc1_dc, sr)
        self._mark("osc1_rand")
        self.osc1_rand = pyo.Randh(-1.0, 1.0, f1)
        self._mark("osc2_tab")

        # Hard sync: amSynth's sync accumulator (a phasor at osc1's frequency) wraps reset
        # osc2's phase, an OscTrig reading a ramp.  A Phasor outputs before incrementing and
        # amSynth increments first, so amSynth's wrap at sample n is the phasor crossing
        # 1 - increment upwards at n.  OscTrig outputs phase 0 on its trigger sample where
        # amSynth is one increment in: its phase input adds an increment (and a per-note
        # offset, see start), so a reset makes no spurious edge.
        self._ph2_offset = pyo.Sig(f2, mul=1.0 / sr, add=0.0)
        self._mark("sync")
        self.sync_ph = pyo.Phasor(f1, phase=0.0)
        self.sync = pyo.Thresh(self.sync_ph, pyo.Sig(f1, mul=-1.0 / sr, add=1.0), 0)
        self._mark("osc2_tab")
        # OscTrig adds its phase input to its position and wraps once: an input outside [0, 1)
        # (the offset plus a vibrato-grown increment) reads past the table's end (NaN, garbage).
        self.ph2_phase = pyo.Wrap(self._ph2_offset, 0.0, 1.0)
        self.ph2 = pyo.OscTrig(sh.phase_table, self.sync, f2, phase=self.ph2_phase, interp=1)
        osc2_tab = _boxcar(sh.osc2_table, self.ph2, f2, sh.osc2_dc, sr)
        self._mark("osc2_rand")
        self.osc2_rand = pyo.Randh(-1.0, 1.0, f2)
        self._mark("always")
        osc1 = osc1_tab + self.osc1_rand
        osc2 = osc2_tab + self.osc2_rand

        # osc1*m1 + osc2*m2 + ring*osc1*osc2, factored as osc1*(ring*osc2 + m1) + m2*osc2.
        mix = osc1 * pyo.Sig(osc2, mul=sh.ring, add=sh.mix1) + osc2 * sh.mix2

        self.env_f = _Env(sh.filter_sus, sh.filter_sus_rest)
        self.filter_velocity = pyo.Sig(sh.filter_vel, mul=0.0, add=1.0)
        cut = pyo.Sig(self.freq, mul=sh.cut_key, add=sh.cut_fixed) * self.filter_velocity
        cut = cut * pyo.Sig(lfo_cut, mul=sh.filter_lfo_depth, add=sh.filter_lfo_offset)
        cut = cut * pyo.Sig(self.env_f.out, mul=sh.env_down, add=1.0)
        cut = cut + self.freq * (self.env_f.out * sh.env_up)
        self._mark("filter")
        # amSynth's own biquad (pyo's has the same coefficients: checked by impulse response).
        # Clamped both ways as SynthFilter does: above Nyquist the biquad's tan() wraps and the
        # filter blows up (inf, then NaN: 3 factory presets with high cutoff, key tracking or
        # envelope amount).  Max first, so a NaN cutoff still becomes 10 Hz, not NaN.
        cut = pyo.Min(pyo.Max(cut, MIN_CUTOFF_HZ), MAX_CUTOFF_NYQUIST * sr / 2.0)
        self.filter = pyo.Biquadx(mix, cut, sh.q, type=0, stages=2)
        self._mark("always")
        self.filtered = pyo.Interp(self.filter, mix, 0.0)  # interp 1 = amSynth's bypass

        self.env_a = _Env(sh.amp_sus, sh.amp_sus_rest)
        self.amp_velocity = pyo.Sig(sh.amp_vel, mul=0.0, add=1.0)
        # amSynth smooths the master volume per voice (ParamSmoother, 0.5% a sample) from 0 on
        # a voice's first note, so in a fresh amSynth every note fades in (tau 200 samples).
        # Renders of amSynth (one instance per patch) all have it; the Linseg replays it.
        self.fade = pyo.Linseg(fade_in_points(sr))
        amp = self.env_a.out * pyo.Sig(lfo, mul=sh.amp_lfo_depth, add=sh.amp_lfo_offset)
        amp = amp * self.amp_velocity * self.fade * sh.gain
        self.vca = pyo.Tone(amp, VCA_LOWPASS_HZ)
        self.out = self.filtered * self.vca
        # The Adsr's end-of-release trigger is a separate stream that only the Python-level
        # play() starts; the TrigFunc parks the voice when the amp envelope is done.
        end = self.env_a.e1["trig"]
        self._end = pyo.TrigFunc(end, on_silent, arg=self)

        groups = self._split({id(b) for b in self.env_a.bases + self.env_f.bases})  # Adsrs run themselves
        self._always = groups.pop("always")
        self._sources = groups
        self._b_lfo_ph, self._b_ph1, self._b_sync_ph, self._b_ph2 = (
            base(self.lfo_ph), base(self.ph1), base(self.sync_ph), base(self.ph2))
        self._b_freq = base(self.freq)
        self._b_ph2_offset = base(self._ph2_offset)
        self._b_filter = base(self.filter)
        self._b_filtered = base(self.filtered)
        self._b_filter_vel = base(self.filter_velocity)
        self._b_amp_vel = base(self.amp_velocity)
        rands = (self.lfo_rand, self.osc1_rand, self.osc2_rand)
        self._b_rands = {n: base(r) for n, r in zip(("lfo", "osc1", "osc2"), rands, strict=True)}
        self._rand_rates = {"lfo": base(sh.lfo_rate), "osc1": base(f1), "osc2": base(f2)}
        self._sr = sr
        self._modes: Modes | None = None
        self.stop_all()

    def _mark(self, group: str) -> None:
        """Objects created from here on belong to ``group`` (pyo appends streams in order)."""
        self._marks.append((len(self._server.getStreams()), group))

    def _split(self, skip: set[int]) -> dict[str, list[Any]]:
        """The voice's objects (as base C objects) by group, in construction order."""
        streams = self._server.getStreams()
        bounds = [m[0] for m in self._marks[1:]] + [len(streams)]
        groups: dict[str, list[Any]] = {name: [] for _, name in self._marks}
        for (start, name), end in zip(self._marks, bounds, strict=True):
            groups[name] += [s.getStreamObject() for s in streams[start:end]]
        return {name: [o for o in objs if id(o) not in skip] for name, objs in groups.items()}

    # -- modes -----------------------------------------------------------------------------

    def set_modes(self, m: Modes) -> None:
        """Switch sources, noise rates, filter type and slope (under the synth's duck)."""
        old = self._modes
        self._modes = m
        if old is None or old.filter_type != m.filter_type:
            if m.filter_type != BYPASS:
                self._b_filter.setType(m.filter_type)
            self._b_filtered.setInterp(1.0 if m.filter_type == BYPASS else 0.0)
        if old is None or old.stages != m.stages:
            self._b_filter.setStages(m.stages)
        # Randh: sample-and-hold at the LFO/oscillator rate, white noise at every sample.
        for n, kind, noise in (("lfo", m.lfo, waves.LFO_NOISE), ("osc1", m.osc1, waves.OSC_NOISE),
                               ("osc2", m.osc2, waves.OSC_NOISE)):
            rate = float(self._sr) if kind == noise else self._rand_rates[n]
            self._b_rands[n].setFreq(rate)
        if not self.silent:
            want, had = m.sources(), old.sources() if old is not None else set()
            for name in had - want:
                for o in self._sources[name]:
                    o.stop()
            for name in want - had:
                for o in self._sources[name]:
                    o.play()

    def running(self) -> int:
        """How many of the voice's pyo objects are computing (a parked voice: none)."""
        groups = [self._always, *self._sources.values()]
        return sum(1 for group in groups for o in group if o._getStream().isPlaying())

    def stop_all(self) -> None:
        """Stop every object of the voice: a silent voice then costs almost nothing."""
        for o in self._always:
            o.stop()
        for group in self._sources.values():
            for o in group:
                o.stop()

    # -- notes -----------------------------------------------------------------------------

    def start(
        self,
        start_hz: float,
        hz: float,
        glide_s: float,
        velocity: float,
        amp: EnvTimes,
        filt: EnvTimes,
        lags: tuple[float, float] = (0.0, 0.0),
    ) -> None:
        """Trigger the voice (amSynth ``triggerOn``): envelopes attack from their current level.

        ``lags`` = (phase in cycles osc1 loses against amSynth's sync accumulator at the note
        start, osc2's first phase increment).  A fresh amSynth oscillator ramps its frequency
        from 0 over its first 64-sample chunk, so both oscillators start 32.5 samples late,
        the sync accumulator on time: here the oscillators start on time and the sync
        phasor 32.5 samples early instead (sync sounds different otherwise).
        """
        if self.silent:
            # amSynth resets a silent voice: oscillator and LFO phases start at 0.
            self.silent = False
            assert self._modes is not None
            for o in self._always:
                o.play()
            for name in self._modes.sources():
                for o in self._sources[name]:
                    o.play()
            for b in (self._b_lfo_ph, self._b_ph1, self._b_sync_ph, self._b_ph2):
                b.reset()
            sync_lag, inc2 = lags
            self._b_sync_ph.setPhase(sync_lag % 1.0)
            # after reset() OscTrig's first output is already one increment in: take the
            # phase input's extra increment back (with sync, the resets need it)
            self._b_ph2_offset.setAdd(0.0 if self._modes.sync else (-inc2) % 1.0)
        self.glide(start_hz, hz, glide_s)
        self.velocity = velocity
        self._b_filter_vel.setMul(velocity - 1.0)  # blend(1, vel, sens) = 1 + sens*(vel - 1)
        self._b_amp_vel.setMul(velocity - 1.0)
        self.env_a.on(amp)
        self.env_f.on(filt)
        self.held = True

    def glide(self, start_hz: float, hz: float, seconds: float) -> None:
        """Move the key frequency linearly from ``start_hz`` to ``hz`` (amSynth's Lerper)."""
        self.hz = hz
        self._b_freq.setList([(0.0, float(start_hz)), (max(float(seconds), 1e-6), float(hz))])
        self._b_freq.play()

    def current_hz(self) -> float:
        """The key frequency now (end of the last block)."""
        value = float(self.freq.get())
        return value if value > 0.0 else self.hz

    def release(self, amp_release: float, filter_release: float) -> None:
        """Start both envelopes' release (amSynth ``triggerOff``)."""
        self.held = False
        self.env_a.off(amp_release)
        self.env_f.off(filter_release)

    def kill(self) -> None:
        """Silence within 5 ms instead of amSynth's hard reset, which clicks."""
        self.release(KILL_RELEASE_S, KILL_RELEASE_S)
        self.key = -1

    def became_silent(self) -> None:
        """The amp envelope's release has ended: park the voice."""
        self.silent = True
        self.held = False
        self.key = -1
        self.stop_all()
