"""The live input's timbre, judged: ``timbrespace bench``'s P(target) by ``/input/alpha`` (issue 16).

Inputs no model was trained on (the bench's sawtooth phrase with vibrato and a glide; GM programs
outside the 12 instruments, from the SoundFont) are played through a render score's ``input:``,
the live server's input path, toward each target at each ``/input/alpha``. The judge is the
evaluation's instrument classifier (``eval timbre``'s CNN, trained on the real FluidR3 notes, the
same cached net); it reads 1.5 s of log-mel from a note's onset (the notes it was trained on: held
1.5 s, 2 s apart). So the GM programs play their notes as those notes are laid out and each note is
judged from its onset, the mean over notes; the real target instrument playing the same notes,
judged the same way, is the control (what the judge gives the real thing). The sawtooth, one
phrase without note gaps, is judged over 1.5 s windows every 0.25 s inside its span. A phrase of
short notes with gaps under fixed windows is not judged: the real flute reads 0.2 to 0.3 there.
"""

from __future__ import annotations

import itertools
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from timbrespace.config import REPO_ROOT, Config
from timbrespace.data.soundfont import DURATION_S, INSTRUMENTS, NOTE_OFF_S
from timbrespace.evaluate.classifier import Classifier
from timbrespace.models.timbre_features import FeatureSpec

F64 = npt.NDArray[np.float64]
SR = 48000
#: The targets judged (five of the 12 instruments) and the /input/alpha values.
TARGETS = ("trumpet", "flute", "cello", "saxophone", "clarinet")
ALPHAS = (0.0, 0.5, 1.0)
#: The judge's window (its training notes' 129 frames) and the hop between windows of a phrase (s).
WINDOW_S, HOP_S = 1.5, 0.25
#: GM programs (from 0) outside the 12 instruments and their notes (``bench_input.UNSEEN``'s pitches).
GM_INPUTS = (("voice oohs", 53, (57, 59, 60, 62, 64, 65, 67, 69)), ("whistle", 78, (72, 74, 76, 77, 79, 81, 83, 84)))
#: The GM notes' peak, and the layout of the judge's training notes they are played in (s).
PEAK, HELD_S, PERIOD_S = 0.3, NOTE_OFF_S, DURATION_S
RANGES = {i.name: (i.low, i.high) for i in INSTRUMENTS}


@dataclass(frozen=True)
class Phrase:
    """An input played through the transfer: its audio at :data:`SR` and, for a phrase of notes,
    their pitches (MIDI), onsets (s) and held length (s); no notes: judged over fixed windows."""

    name: str
    x: F64
    pitches: tuple[int, ...] = ()
    onsets: tuple[float, ...] = ()
    held: float = HELD_S

    @property
    def seconds(self) -> float:
        return len(self.x) / SR


@dataclass(frozen=True)
class Judge:
    """An instrument classifier with its classes' names and the log-mel it reads."""

    clf: Classifier
    instruments: list[str]
    spec: FeatureSpec

    def posterior(self, y: F64, sr: int, seconds: float) -> F64:
        """Mean posterior over the instruments of the 1.5 s windows of ``y`` (at ``sr``) starting
        every 0.25 s within its first ``seconds`` (at least one window: the first)."""
        from timbrespace.input_file import resample
        from timbrespace.models.timbre_features import logmel

        z = resample(np.asarray(y, np.float64), sr, self.spec.sample_rate).astype(np.float64)
        rate = self.spec.sample_rate
        starts = np.arange(0.0, max(seconds - WINDOW_S, 0.0) + 1e-9, HOP_S)
        feats = np.stack([logmel(z[int(s * rate) :], self.spec) for s in starts])
        return np.asarray(self.clf.proba(feats).mean(axis=0), dtype=np.float64)

    def notes(self, y: F64, sr: int, onsets: tuple[float, ...], held: float) -> F64:
        """Posteriors ``(notes, instruments)`` of each note of ``y`` (at ``sr``): 1.5 s of log-mel
        from its onset, cut ``held`` s after it (zero-padded), as the judge's training notes start."""
        from timbrespace.input_file import resample
        from timbrespace.models.timbre_features import logmel

        if not onsets:
            raise ValueError("Judge.notes: expected at least one onset, got none")
        z = resample(np.asarray(y, np.float64), sr, self.spec.sample_rate).astype(np.float64)
        rate = self.spec.sample_rate
        feats = np.stack([logmel(z[int(t * rate) : int((t + held) * rate)], self.spec) for t in onsets])
        return np.asarray(self.clf.proba(feats), dtype=np.float64)

    def phrase(self, y: F64, p: Phrase) -> F64:
        """Mean posterior of ``y`` (at :data:`SR`) played as ``p``: over its notes, or over fixed
        windows inside its span where it has none."""
        if p.onsets:
            return np.asarray(self.notes(y, SR, p.onsets, p.held).mean(axis=0), dtype=np.float64)
        return self.posterior(y, SR, p.seconds)


def load_judge(cfg: Config, features: Path, cnn_cache: Path | None) -> Judge | None:
    """``eval timbre``'s CNN on the notes of ``cfg.data.data_dir`` (its feature cache ``features``,
    its nets ``cnn_cache``: trained there once if absent); None without the notes."""
    from timbrespace.evaluate.timbre import Settings, judge
    from timbrespace.models.timbre_features import load_notes

    manifest = cfg.data.data_dir / "manifest.json"
    if not manifest.is_file():
        return None
    notes = load_notes(manifest, cache_dir=features)
    clf, _ = judge(notes, Settings.make(False), cnn_cache)
    return Judge(clf, list(notes.instruments), notes.spec)


def transferred(cfg: Config, wav: Path, seconds: float, target: str, alpha: float) -> F64:
    """The output of a render whose input plays ``wav`` (``seconds`` long) toward ``target`` at ``alpha``."""
    from timbrespace.render import ScoreInput, parse_score, render_score

    score = parse_score({"events": [{"time": 0.0, "address": "/input/target", "args": [target]},
                                    {"time": 0.0, "address": "/input/alpha", "args": [float(alpha)]},
                                    {"time": 0.0, "address": "/input", "args": [1]}], "duration": seconds + 0.1})
    score.input = ScoreInput(wav)
    return np.asarray(render_score(cfg, score).audio[:, 0], dtype=np.float64)


def gm_phrase(fluid: Any, name: str, bank: int, program: int, pitches: tuple[int, ...]) -> Phrase:
    """``pitches`` of a SoundFont program (velocity 100, peak :data:`PEAK`), each held :data:`HELD_S`
    and :data:`PERIOD_S` apart (``fluid``: a ``FluidRenderer`` at :data:`SR`)."""
    x = np.concatenate([fluid.render(bank, program, p, 100, HELD_S, PERIOD_S) for p in pitches]).astype(np.float64)
    return Phrase(name, x * (PEAK / np.abs(x).max()), tuple(pitches), tuple(i * PERIOD_S for i in range(len(pitches))))


def in_range(p: Phrase, target: str) -> int:
    """How many of the phrase's notes lie in ``target``'s range (``data soundfont``'s)."""
    lo, hi = RANGES[target]
    return sum(lo <= m <= hi for m in p.pitches)


def inputs(cfg: Config, quick: bool) -> list[Phrase]:
    """The phrases played: the sawtooth, and (not ``quick``, with the SoundFont) the GM programs'
    notes laid out as the judge's notes."""
    from timbrespace.bench_input import phrase

    out = [Phrase("sawtooth (vibrato, glide)", phrase(SR)[1])]
    if quick or not cfg.data.soundfont.exists():
        return out
    from timbrespace.data.fluid import FluidRenderer, SoundFontError

    try:
        with FluidRenderer(cfg.data.soundfont, SR) as fluid:
            out += [gm_phrase(fluid, f"GM {name}", 0, program, pitches) for name, program, pitches in GM_INPUTS]
    except SoundFontError:
        pass
    return out


def controls(cfg: Config, judge: Judge, p: Phrase, targets: tuple[str, ...]) -> dict[str, float]:
    """P(target) of the real target (its FluidR3 program) playing ``p``'s notes, judged as the
    transfer is: what the judge gives the real thing (empty for a phrase without notes)."""
    from timbrespace.data.fluid import FluidRenderer

    if not p.onsets:
        return {}
    spec = {i.name: i for i in INSTRUMENTS}
    out = {}
    with FluidRenderer(cfg.data.soundfont, SR) as fluid:
        for t in targets:
            real = gm_phrase(fluid, t, spec[t].bank, spec[t].program, p.pitches)
            out[t] = float(judge.phrase(real.x, p)[judge.instruments.index(t)])
    return out


def judged(cfg: Config, judge: Judge, p: Phrase, targets: tuple[str, ...], alphas: tuple[float, ...]
           ) -> dict[str, Any]:
    """P(target) and the judge's top instrument for each target and alpha, the phrase ``p`` played
    through a render's input."""
    import soundfile

    out: dict[str, Any] = {}
    seconds = p.seconds
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "input.wav"
        soundfile.write(str(wav), p.x, SR, subtype="FLOAT")
        for target in targets:
            k = judge.instruments.index(target)
            rows = []
            for alpha in alphas:
                post = judge.phrase(transferred(cfg, wav, seconds, target, alpha), p)
                top = int(post.argmax())
                rows.append({"alpha": alpha, "p_target": float(post[k]), "top": judge.instruments[top],
                             "p_top": float(post[top])})
            out[target] = rows
    return out


def bench_judge(cfg: Config, quick: bool, features: Path | None = None, cnn_cache: Path | None = None
                ) -> dict[str, Any] | None:
    """The judge's P(target) on each input's transfer to each target at each alpha; None without the
    evaluation's notes (``timbrespace data soundfont``). ``quick``: the sawtooth to the trumpet at
    alpha 0 and 1."""
    cache = REPO_ROOT / "var" / "cache"
    judge = load_judge(cfg, features or cache / "timbre-features", cnn_cache or cache / "timbre-eval")
    if judge is None:
        return None
    targets, alphas = (("trumpet",), (0.0, 1.0)) if quick else (TARGETS, ALPHAS)
    out: dict[str, Any] = {"alphas": list(alphas), "window_s": WINDOW_S, "hop_s": HOP_S, "inputs": {},
                           "controls": {}, "in_range": {}}
    for p in inputs(cfg, quick):
        print(f"bench: live input judged, {p.name} ...", file=sys.stderr)
        out["inputs"][p.name] = judged(cfg, judge, p, targets, alphas)
        out["controls"][p.name] = controls(cfg, judge, p, targets)
        if p.pitches:
            out["in_range"][p.name] = {t: [in_range(p, t), len(p.pitches)] for t in targets}
    return out


def claim(r: dict[str, Any]) -> dict[str, Any]:
    """Against issue 16's claim, per input: the targets over 0.5 at alpha 1 and those whose P(target)
    rises with alpha (each step up)."""
    out: dict[str, Any] = {}
    for name, by_target in r["inputs"].items():
        over = [t for t, rows in by_target.items() if rows[-1]["p_target"] > 0.5]
        rising = [t for t, rows in by_target.items()
                  if all(b["p_target"] > a["p_target"] for a, b in itertools.pairwise(rows))]
        out[name] = {"over_half": over, "rising": rising, "met": len(set(over) & set(rising)) >= 4}
    return out


def markdown(r: dict[str, Any]) -> str:
    """One table per input: P(target) (the judge's top instrument where it is another) by alpha, and
    for a phrase of notes, the notes in the target's range and the real target's P (the control)."""
    alphas = r["alphas"]
    lines = [f"Live input judged by `eval timbre`'s CNN: P(target), the mean over the notes, each judged from "
             f"its onset (the sawtooth: over {r['window_s']:g} s windows every {r['hop_s']:g} s); the judge's top "
             "instrument in brackets where it is not the target; the real target playing the notes, judged so."]
    verdicts = claim(r)
    for name, by_target in r["inputs"].items():
        control, ranges = r.get("controls", {}).get(name, {}), r.get("in_range", {}).get(name, {})
        extra = ["in range", "real target"] if control else []
        lines += ["", f"| {name}: target | " + " | ".join([f"alpha {a:g}" for a in alphas] + extra) + " |",
                  "| --- |" + " --- |" * (len(alphas) + len(extra))]
        for target, rows in by_target.items():
            cells = [f"{c['p_target']:.2f}" + ("" if c["top"] == target else f" ({c['top']} {c['p_top']:.2f})")
                     for c in rows]
            if control:
                cells += [f"{ranges[target][0]}/{ranges[target][1]}", f"{control[target]:.2f}"]
            lines.append(f"| {target} | " + " | ".join(cells) + " |")
        v = verdicts[name]
        lines += ["", f"{name}: over 0.5 at alpha 1: {', '.join(v['over_half']) or 'none'}; rising with alpha: "
                      f"{', '.join(v['rising']) or 'none'}; four targets both: {'met' if v['met'] else 'not met'}."]
    return "\n".join(lines) + "\n"
