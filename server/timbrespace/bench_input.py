"""``timbrespace bench``'s live-input section (docs/live-transfer.md): pitch, latency and cost.

* pitch: a sawtooth phrase (220 Hz with a +-30-cent vibrato, silence, an octave glide) rendered
  through an ``input:`` score, the output's f0 measured by a YIN in numpy (not the server's
  tracker): the share of voiced frames within 25 cents after the delay that fits best; the same
  for a sentence said by espeak-ng (a Debian package; skipped without it) against the input's own f0;
* latency: sawtooth notes at random pitches played into the input graph alone, measured on the
  voice's own oscillator and amplitude (no device buffers: the algorithm's latency), for both
  ``input.onset`` choices, beside what the audio side counts itself (``/input/status``)
  (:func:`latency` also for other settings and pitch ranges: the table of docs/live-transfer.md);
* cost: the audio side's CPU per second of audio (on, and off), and the control side's model
  calls (one input frame, one encoding of the input's half second);
* timbre: the evaluation's instrument classifier's P(target) by ``/input/alpha`` (bench_input_judge.py).

Every figure but the costs is measured in rendered samples, so it does not vary with the load.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from timbrespace.config import Config

F64 = npt.NDArray[np.float64]
SR = 48000
CENTS = 25.0


def phrase(sr: int = SR, amplitude: float = 0.3) -> tuple[F64, F64]:
    """The input's true f0 per sample (0 in the gap) and a sawtooth following it: 0.8 s at 220 Hz
    with +-30 cents of vibrato at 5.5 Hz, 0.2 s of silence, a 1.2 s glide up an octave."""
    t = np.arange(int(2.2 * sr)) / sr
    vibrato = 220.0 * 2.0 ** (30.0 / 1200.0 * np.sin(2 * np.pi * 5.5 * t))
    f0 = np.where(t < 0.8, vibrato, 220.0 * 2.0 ** np.clip((t - 1.0) / 1.2, 0.0, 1.0))
    f0[(t >= 0.8) & (t < 1.0)] = 0.0
    x = amplitude * 2.0 * ((np.cumsum(f0) / sr) % 1.0 - 0.5)
    x[f0 == 0.0] = 0.0
    return f0, x


def yin(x: F64, frame: int = 1024, hop: int = 256, fmin: float = 80.0, fmax: float = 1200.0) -> tuple[F64, F64]:
    """Frame centres (s) and f0 (Hz, NaN where unvoiced): YIN's normalised difference, threshold 0.15."""
    lo, hi = int(SR / fmax), int(SR / fmin)
    times, out = [], []
    for start in range(0, len(x) - frame - hi - 2, hop):
        w = x[start : start + frame]
        d = np.array([np.sum((w - x[start + tau : start + tau + frame]) ** 2) for tau in range(hi + 2)])
        cm = np.ones_like(d)
        cm[1:] = d[1:] * np.arange(1, len(d)) / np.maximum(np.cumsum(d[1:]), 1e-20)
        times.append((start + frame / 2) / SR)
        below = np.flatnonzero(cm[lo:hi] < 0.15)
        if len(below) == 0 or np.sum(w**2) < 1e-8:
            out.append(np.nan)
            continue
        tau = lo + int(below[0])
        while tau + 1 < hi and cm[tau + 1] < cm[tau]:
            tau += 1
        a, b, c = cm[tau - 1 : tau + 2]
        den = a - 2 * b + c
        out.append(SR / (tau + (0.5 * (a - c) / den if den > 0 else 0.0)))
    return np.array(times), np.array(out)


def follows(y: F64, truth: F64, start: float = 0.0, delays: F64 | None = None) -> tuple[float, float, float]:
    """(share of voiced frames within 25 cents, median |cents|, delay s) at the delay that fits best
    (the largest share; of those, the smallest median).

    ``start``: where the input begins in ``y`` (s). Frames within 60 ms of a change between sound
    and silence are left out: neither the input's f0 nor the output's is defined there.
    """
    times, f = yin(y)
    t_in = np.arange(len(truth)) / SR
    best = (-1.0, 1e9, 0.0)
    for d in np.arange(0.0, 0.0605, 0.0025) if delays is None else delays:
        tq = times - start - d
        want = np.interp(tq, t_in, truth, left=0.0, right=0.0)
        edge = np.interp(tq[:, None] + np.array([-0.06, 0.06]), t_in, truth, left=0.0, right=0.0)
        frames = np.isfinite(f) & (want > 0) & (edge > 0).all(axis=1)
        if frames.sum() < 100:
            continue
        cents = np.abs(1200 * np.log2(f[frames] / want[frames]))
        share, median = float(np.mean(cents < CENTS)), float(np.median(cents))
        if (share, -median) > (best[0], -best[1]):
            best = (share, median, float(d))
    return best


def bench_pitch(cfg: Config, target: str = "trumpet") -> dict[str, float]:
    """The phrase through a render score's input: how closely the output's pitch follows."""
    import soundfile

    from timbrespace.render import ScoreInput, parse_score, render_score

    truth, x = phrase()
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "phrase.wav"
        soundfile.write(str(wav), x, SR, subtype="PCM_16")
        score = parse_score({"events": [{"time": 0.0, "address": "/input/target", "args": [target]},
                                        {"time": 0.0, "address": "/input", "args": [1]}], "duration": 2.3})
        score.input = ScoreInput(wav)
        y = np.asarray(render_score(cfg, score).audio[:, 0], dtype=np.float64)
    share, median, delay = follows(y, truth)
    out = {"within_25c": share, "median_cents": median, "delay_ms": delay * 1000.0}
    held = slice(int(0.15 * SR), int(0.75 * SR))
    out["level_db"] = float(20 * np.log10(np.sqrt(np.mean(y[held] ** 2)) / np.sqrt(np.mean(x[held] ** 2))))
    return out


#: What espeak-ng says for :func:`bench_voice`: a sentence of speech, its pitch moving all through.
SENTENCE = "Whistle me a tune, and I will play it back to you on the trumpet, the flute or the cello."


def voice(voice_name: str = "en+f3") -> F64 | None:
    """espeak-ng's ``voice_name`` saying :data:`SENTENCE`, at SR, peak 0.3; None without espeak-ng."""
    import shutil
    import subprocess

    from timbrespace.input_file import load_input

    if shutil.which("espeak-ng") is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "voice.wav"
        subprocess.run(["espeak-ng", "-v", voice_name, "-s", "140", "-w", str(raw), SENTENCE], check=True,
                       capture_output=True)
        x = load_input(raw, SR).astype(np.float64)
    return np.asarray(x * (0.3 / np.abs(x).max()))


def follows_input(y: F64, x: F64) -> tuple[float, float, float, int, int]:
    """(share within 25 cents, median |cents|, delay s, frames compared, frames of the input) of the
    output ``y``'s f0 against the input ``x``'s own (the same YIN on both), over the input's frames
    voiced with 60 ms of voiced frames either side where the output's are voiced too, at the delay
    that fits best (the largest share; of those, the smallest median)."""
    t_in, f_in = yin(x)
    t_out, f_out = yin(y)
    hop = t_in[1] - t_in[0]
    k = round(0.06 / hop)
    voiced = np.isfinite(f_in)
    inner = np.array([voiced[max(0, i - k) : i + k + 1].all() for i in range(len(voiced))])
    best = (-1.0, 1e9, 0.0, 0, int(inner.sum()))
    for d in np.arange(0.0, 0.0605, 0.0025):
        idx = np.round((t_in + d - t_out[0]) / hop).astype(int)
        ok = inner & (idx >= 0) & (idx < len(f_out))
        out = np.full(len(f_in), np.nan)
        out[ok] = f_out[idx[ok]]
        frames = ok & np.isfinite(out)
        if frames.sum() < 20:
            continue
        cents = np.abs(1200 * np.log2(out[frames] / f_in[frames]))
        r = (float(np.mean(cents < CENTS)), float(np.median(cents)), float(d), int(frames.sum()), best[4])
        if (r[0], -r[1]) > (best[0], -best[1]):
            best = r
    return best


#: The targets the voice is played as (the four of docs/live-transfer.md's tables).
VOICE_TARGETS = ("trumpet", "flute", "cello", "saxophone")


def bench_voice(cfg: Config, targets: tuple[str, ...] = VOICE_TARGETS) -> dict[str, Any] | None:
    """espeak-ng's voice (en+f3: 150-250 Hz) through a render score's input, for each target; None
    without espeak-ng."""
    x = voice()
    if x is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        return {target: _followed(cfg, x, target, Path(tmp)) for target in targets}


def _followed(cfg: Config, x: npt.NDArray[np.float64], target: str, tmp: Path) -> dict[str, Any]:
    """``x`` played through a render score's input to ``target``: how its output follows the input's
    f0 (:func:`follows_input`)."""
    import soundfile

    from timbrespace.render import ScoreInput, parse_score, render_score

    wav = tmp / "input.wav"
    soundfile.write(str(wav), x, SR, subtype="FLOAT")
    score = parse_score({"events": [{"time": 0.0, "address": "/input/target", "args": [target]},
                                    {"time": 0.0, "address": "/input", "args": [1]}],
                         "duration": len(x) / SR + 0.2})
    score.input = ScoreInput(wav)
    y = np.asarray(render_score(cfg, score).audio[:, 0], dtype=np.float64)
    share, median, delay, frames, voiced = follows_input(y, x)
    return {"within_25c": share, "median_cents": median, "delay_ms": delay * 1000.0, "frames": frames,
            "input_frames": voiced}


#: Inputs no model was trained on, from the GM SoundFont: (name, GM program counted from 0, MIDI notes).
UNSEEN = (("whistle", 78, (72, 74, 76, 77, 79, 81, 83, 84)), ("voice oohs", 53, (57, 59, 60, 62, 64, 65, 67, 69)),
          ("ocarina", 79, (72, 74, 76, 77, 79, 81, 83, 84)))


def bench_unseen(cfg: Config, targets: tuple[str, ...] = VOICE_TARGETS) -> dict[str, Any] | None:
    """Each :data:`UNSEEN` program's notes (0.45 s, 0.1 s apart, velocity 100, rendered by FluidSynth
    from ``data.soundfont``) through a render score's input, for each target, against the input's own
    f0 (:func:`follows_input`); None without the SoundFont or libfluidsynth."""
    from timbrespace.data.fluid import FluidRenderer, SoundFontError

    if not cfg.data.soundfont.exists():
        return None
    out: dict[str, Any] = {}
    try:
        with FluidRenderer(cfg.data.soundfont, SR) as fluid, tempfile.TemporaryDirectory() as tmp:
            for name, program, pitches in UNSEEN:
                x = np.concatenate([fluid.render(0, program, p, 100, 0.45, 0.55) for p in pitches]).astype(np.float64)
                x *= 0.3 / np.abs(x).max()
                for target in targets:
                    out[f"{name}, {target}"] = _followed(cfg, x, target, Path(tmp))
    except SoundFontError:
        return None
    return out


#: With ``spread``, each note's onset up to this many samples (drawn at random, seeded) further
#: than its place 400 ms after the last (where the onsets all fall at one place in a block: 192
#: samples into a 256-sample one). Not a fixed step: the trackers' windows drift against the blocks
#: (a 512-sample window by 37.4 samples in 400 ms), and a step near that keeps every onset at one
#: place against them.
SPREAD = 256


def notes(n: int, seed: int = 0, low: float = -7.0,
          spread: bool = False) -> tuple[list[float], list[float], npt.NDArray[np.float32]]:
    """Onsets (s), pitches (Hz) and a sawtooth of ``n`` notes of 250 ms, 400 ms apart (each up to
    ``SPREAD`` samples later with ``spread``), at random pitches ``low`` to 12 semitones from 220 Hz."""
    rng = np.random.default_rng(seed)
    starts = [0.1 + 0.4 * i for i in range(n)]
    if spread:
        later = np.random.default_rng(seed + 1).integers(0, SPREAD, n)
        starts = [(int(a * SR) + int(d)) / SR for a, d in zip(starts, later, strict=True)]
    freqs = [220.0 * 2 ** (rng.uniform(low, 12) / 12) for _ in range(n)]
    x = np.zeros(int((starts[-1] + 0.5) * SR), np.float32)
    for a, f in zip(starts, freqs, strict=True):
        i, m = _sample(a), int(0.25 * SR)
        x[i : i + m] = 0.3 * 2 * ((f * np.arange(m) / SR) % 1.0 - 0.5)
    return starts, freqs, x


def _sample(t: float) -> int:
    """The sample at ``t`` seconds (``int``, as the rows before ``spread`` were measured; a time made
    from a sample count comes back to it)."""
    i = int(t * SR)
    return i + 1 if (i + 1) / SR <= t else i


def latency(cfg: Config, onset: str, n: int, low: float = -7.0, spread: bool = False) -> dict[str, float]:
    """Onset to the oscillator at the note's pitch, and to sound (ms, p50 / p99), with ``cfg``'s
    tracker settings and ``onset``, over ``n`` notes (the first, which finds the trackers empty,
    left out); ``spread``: the onsets at every place in a block (:func:`notes`)."""
    from timbrespace.audio.live_input import LiveInput
    from timbrespace.audio.offline import OfflineRenderer
    from timbrespace.link.frames import FrameSlots
    from timbrespace.link.input import InputPlan, InputSettings, InputShared

    bs = cfg.audio.block_size
    starts, freqs, x = notes(n, low=low, spread=spread)
    level = float(np.sqrt(np.mean(x[_sample(starts[0]) : _sample(starts[0]) + int(0.25 * SR)].astype(np.float64) ** 2)))
    shared = InputShared()
    with OfflineRenderer(SR, bs, 2) as r:
        live = LiveInput(InputPlan(x, SR, False, (200.0, 800.0, 3200.0), 4096, cfg.input.window,
                                   cfg.input.trackers, onset, cfg.input.onset_window,
                                   low_onset_window_ms=cfg.input.low_onset_window), shared,
                         FrameSlots(1, 4096, 3), SR, bs)
        f0_cap, amp_cap = r.capture(live.f0, len(x) / SR), r.capture(live.amp, len(x) / SR)
        shared.put(InputSettings(on=True))
        for _ in range(len(x) // bs):
            live.block()
            r.process_block()
        f0 = f0_cap.array()[:, 0].astype(np.float64)
        amp = amp_cap.array()[:, 0].astype(np.float64)
        _, counted = shared.latencies()  # what the audio side counted itself (/input/status), every note
        live.close()
    pitch, sound, off_pitch = [], [], []
    for a, f in zip(starts[1:], freqs[1:], strict=True):
        note = slice(_sample(a), _sample(a) + int(0.15 * SR))
        off = np.abs(1200 * np.log2(np.maximum(f0[note], 1.0) / f)) > CENTS
        pitch.append((np.flatnonzero(off)[-1] + 1) / SR * 1000 if off.any() else 0.0)
        heard = amp[note] > 0.1 * level
        sound.append(np.argmax(heard) / SR * 1000 if heard.any() else float("nan"))
        off_pitch.append(float(np.sum(off & (amp[note] > 0.01 * level))) / SR * 1000)
    return {"pitch_p50_ms": float(np.percentile(pitch, 50)), "pitch_p99_ms": float(np.percentile(pitch, 99)),
            "pitch_max_ms": float(np.max(pitch)), "pitch_sd_ms": float(np.std(pitch)),
            "sound_p50_ms": float(np.nanpercentile(sound, 50)), "sound_p99_ms": float(np.nanpercentile(sound, 99)),
            "off_pitch_max_ms": float(max(off_pitch)),
            "counted": len(counted),
            **{f"counted_p{q}_ms": float(np.percentile(counted, q)) / SR * 1000 if len(counted) else float("nan")
               for q in (50, 99)}}


def bench_latency(cfg: Config, quick: bool) -> dict[str, Any]:
    """Onset to the oscillator at the note's pitch, and to sound, for both onset choices (ms)."""
    n = 10 if quick else 29
    out: dict[str, Any] = {"notes": n - 1, "window_ms": cfg.input.window, "trackers": cfg.input.trackers,
                           "onset_window_ms": cfg.input.onset_window,
                           "low_onset_window_ms": cfg.input.low_onset_window, "block_size": cfg.audio.block_size}
    for onset in ("sound", "pitch"):
        out[onset] = latency(cfg, onset, n)
    out["sound, onsets spread"] = latency(cfg, "sound", n, spread=True)
    return out


def bench_cost(cfg: Config, quick: bool) -> dict[str, Any]:
    """CPU of the audio side per second of audio (on, off) and of the control side's model calls."""
    from timbrespace.audio.live_input import LiveInput
    from timbrespace.audio.offline import OfflineRenderer
    from timbrespace.engines.timbre_frames import FrameRequest, TimbreFrames
    from timbrespace.engines.timbre_setup import PreparedTimbre, prepare
    from timbrespace.input_encode import InputEncoder, InputSegment
    from timbrespace.link.frames import FrameSlots
    from timbrespace.link.input import InputPlan, InputSettings, InputShared

    bs = cfg.audio.block_size
    seconds = 2.0 if quick else 10.0
    _, x = phrase()
    out: dict[str, Any] = {"seconds": seconds}
    timbre = prepare(cfg, "cpu")
    space = timbre.space if isinstance(timbre, PreparedTimbre) else None
    # The voice's noise bank has the model's bands (its cost grows with them).
    centres = timbre.noise_centres_hz() if isinstance(timbre, PreparedTimbre) else (200.0, 800.0, 3200.0)
    for on in (True, False):
        shared = InputShared()
        with OfflineRenderer(SR, bs, 2) as r:
            live = LiveInput(InputPlan(np.tile(x, 5).astype(np.float32), SR, True, centres, 4096,
                                       cfg.input.window, cfg.input.trackers, cfg.input.onset,
                                       cfg.input.onset_window,
                                       low_onset_window_ms=cfg.input.low_onset_window),
                             shared, FrameSlots(1, 4096, len(centres)), SR, bs)
            shared.put(InputSettings(on=on))
            n = int(seconds * SR / bs)
            t0 = time.process_time()
            for _ in range(n):
                live.block()
                r.process_block()
            cpu = time.process_time() - t0
            live.close()
        out["audio_on" if on else "audio_off"] = {"cpu_percent": 100.0 * cpu / seconds, "us_per_block": cpu / n * 1e6}
    if space is not None:
        frames = TimbreFrames(space, float(SR), 4096)
        req = FrameRequest(space.means[0], np.zeros(space.latent_dim), np.array([57.0]), np.array([40]),
                           np.array([100.0]), np.array([1.0]))
        encoder = InputEncoder(space)
        seg = InputSegment(x[: SR // 2].astype(np.float32), SR)
        for label, call, reps in (("frame", lambda: frames.run([req]), 20 if quick else 200),
                                  ("encode", lambda: encoder.run([seg]), 5 if quick else 40)):
            call()
            times = []
            for _ in range(reps):
                t0 = time.process_time()
                call()
                times.append((time.process_time() - t0) * 1000)
            out[label] = {"p50_ms": float(np.percentile(times, 50)), "p99_ms": float(np.percentile(times, 99))}
        out["frames_per_s"] = 1.0 / space.hop_s
    return out


def bench_input(cfg: Config, quick: bool, host_timer: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The section's figures; None when the timbre model is not there. ``host_timer``: the bench's
    host-timer row, the floor the late blocks beside a full load are judged against."""
    if not cfg.timbre.enabled or not cfg.timbre.model.exists():
        return None
    from timbrespace.bench_input_judge import bench_judge
    from timbrespace.bench_input_load import bench_input_load

    targets = ("trumpet",) if quick else VOICE_TARGETS
    return {"pitch": bench_pitch(cfg), "voice": bench_voice(cfg, targets), "unseen": bench_unseen(cfg, targets),
            "judge": bench_judge(cfg, quick),
            "latency": bench_latency(cfg, quick),
            "cost": bench_cost(cfg, quick),
            "load": bench_input_load(cfg, quick, host_timer)}


def markdown(r: dict[str, Any]) -> str:
    """The live input's figures as a Markdown table."""
    p, lat, c = r["pitch"], r["latency"], r["cost"]
    rows = [
        ("pitch of the output, sawtooth phrase (vibrato, glide), trumpet",
         f"{100 * p['within_25c']:.1f}% of voiced frames within 25 cents, median {p['median_cents']:.1f} cents",
         f"after the best delay, {p['delay_ms']:.1f} ms; level {p['level_db']:+.2f} dB of the input's"),
    ]
    inputs = [(f"espeak-ng's voice (en+f3), {t}", v) for t, v in (r.get("voice") or {}).items()]
    inputs += [(f"GM {k} (SoundFont)", v) for k, v in (r.get("unseen") or {}).items()]
    for what, v in inputs:
        rows.append((f"pitch of the output, {what}",
                     f"{100 * v['within_25c']:.1f}% of voiced frames within 25 cents of the input's f0, median "
                     f"{v['median_cents']:.1f} cents", f"after the best delay, {v['delay_ms']:.1f} ms; "
                     f"{v['frames']} of the input's {v['input_frames']} frames voiced in the output too"))
    for onset in ("sound", "pitch", "sound, onsets spread"):
        if onset not in lat:
            continue
        o = lat[onset]
        where = (f"onsets at random places in {SPREAD} samples" if "spread" in onset
                 else "onsets all at one place in a block")
        rows.append((f"onset → voice at the note's pitch / sound, input.onset {onset}",
                     f"{o['pitch_p50_ms']:.1f} / {o['pitch_p99_ms']:.1f} ms p50 / p99 (jitter: sd "
                     f"{o['pitch_sd_ms']:.1f} ms); sound "
                     f"{o['sound_p50_ms']:.1f} / {o['sound_p99_ms']:.1f} ms",
                     f"{lat['notes']} notes ({where}), window {lat['window_ms']:g} ms, {lat['trackers']} trackers, "
                     f"onset window {lat['onset_window_ms']:g} ms (low notes: {lat['low_onset_window_ms']:g} ms), "
                     f"{lat['block_size']}-sample blocks, no device buffers; off pitch at most "
                     f"{o['off_pitch_max_ms']:.1f} ms a note; as the audio side counts it (/input/status, "
                     f"{o['counted']} notes): {o['counted_p50_ms']:.1f} / {o['counted_p99_ms']:.1f} ms"))
    rows.append(("input path in the audio process, on / off", f"{c['audio_on']['cpu_percent']:.2f}% / "
                 f"{c['audio_off']['cpu_percent']:.2f}% of a core",
                 f"{c['audio_on']['us_per_block']:.0f} / {c['audio_off']['us_per_block']:.0f} us a block"))
    if r.get("load"):
        from timbrespace.bench_input_load import markdown_rows as load_rows

        rows += load_rows(r["load"])
    if "frame" in c:
        rows.append(("input frame decode / input encoding (control side)",
                     f"{c['frame']['p50_ms']:.2f} / {c['encode']['p50_ms']:.1f} ms",
                     f"a frame {c['frames_per_s']:.0f} times a second while voiced; an encoding 4 times a second "
                     "while alpha < 1"))
    lines = ["Live input (docs/live-transfer.md): pitch and latency measured in rendered samples; costs in CPU "
             "time.", "", "| figure | value | note |", "| --- | --- | --- |"]
    lines += [f"| {a} | {b} | {n} |" for a, b, n in rows]
    if r.get("judge"):
        from timbrespace.bench_input_judge import markdown as judge_markdown

        lines += ["", judge_markdown(r["judge"]).rstrip("\n")]
    return "\n".join(lines) + "\n"
