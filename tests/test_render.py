"""Offline renders of scores through the real app, engine and pyo synth, checked numerically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from timbrespace import config
from timbrespace.mapping import spectral_centroid
from timbrespace.models.patch_space import PatchSpace
from timbrespace.patch import params
from timbrespace.render import ScoreError, load_score, parse_score, render_score
from timbrespace.session.context import local

from conftest import assert_same_spectrum

pytestmark = pytest.mark.numeric

SR = 48000


@pytest.fixture(scope="module")
def cfg(tmp_path_factory: pytest.TempPathFactory) -> config.Config:
    c = config.load(None)
    tmp = tmp_path_factory.mktemp("render")
    c.patch.user_bank = tmp / "user.bank"
    c.state.persist = False
    return c


@pytest.fixture(scope="module")
def space(cfg: config.Config) -> PatchSpace:
    return PatchSpace.load(cfg.patch.model, device="cpu", num_threads=1)


SINE: dict[str, float] = {
    **{p.name: p.default for p in params.PARAMS},
    "osc1_waveform": 0, "osc2_waveform": 0, "osc_mix": -1, "osc_mix_mode": 0, "filter_type": 4,
    "amp_attack": 0, "amp_decay": 0, "amp_sustain": 1, "amp_release": 0.2, "freq_mod_amount": 0,
    "filter_mod_amount": -1, "amp_mod_amount": -1, "reverb_wet": 0, "distortion_crunch": 0,
    "portamento_time": 0, "amp_vel_sens": 0,
}


def sine_patch(t: float = 0.0) -> list[dict[str, Any]]:
    return [{"time": t, "address": "/param", "args": [k, float(v)]} for k, v in SINE.items()]


def render(cfg: config.Config, events: list[dict[str, Any]], duration: float) -> npt.NDArray[np.float32]:
    result = render_score(cfg, parse_score({"events": events, "duration": duration}))
    assert not result.failures, result.failures
    audio = result.audio
    assert audio.shape == (int(np.ceil(duration * SR / 256)) * 256, 2)
    assert np.isfinite(audio).all()
    assert np.abs(audio).max() <= 1.0
    return audio


def f0(x: npt.NDArray[np.float32]) -> float:
    """Fundamental by FFT peak with parabolic interpolation (a pure tone here)."""
    mono = x.mean(axis=1) if x.ndim == 2 else x
    n = mono.size
    spec = np.abs(np.fft.rfft(mono * np.hanning(n), 8 * n))
    k = int(np.argmax(spec[1:])) + 1
    a, b, c = np.log(spec[k - 1 : k + 2] + 1e-30)
    shift = 0.5 * (a - c) / (a - 2 * b + c)
    return float((k + shift) * SR / (8 * n))


def rms(x: npt.NDArray[np.float32]) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def test_sine_patch_at_a4_is_440_hz(cfg: config.Config) -> None:
    audio = render(cfg, [*sine_patch(), {"time": 0.01, "address": "/note", "args": [69, 100]}], 1.0)
    seg = audio[SR // 4 : SR]
    assert f0(seg) == pytest.approx(440.0, rel=0.01)
    assert rms(seg) > 0.01


def test_velocity_zero_releases_to_silence(cfg: config.Config) -> None:
    events = [*sine_patch(), {"time": 0.0, "address": "/note", "args": [60, 100]},
              {"time": 0.5, "address": "/note", "args": [60, 0]}]
    audio = render(cfg, events, 2.0)
    assert rms(audio[SR // 4 : SR // 2]) > 0.01
    assert rms(audio[int(1.5 * SR) :]) < 1e-4  # release is 0.2**3 s: long gone


def test_render_is_deterministic(cfg: config.Config) -> None:
    events = [{"time": 0.0, "address": "/latent", "args": [0.3, 0.6]},
              {"time": 0.0, "address": "/note", "args": [60, 100]},
              {"time": 0.2, "address": "/latent", "args": [0.7, 0.2]}]
    a = render(cfg, events, 0.5)
    b = render(cfg, events, 0.5)
    assert np.array_equal(a, b)


def _cutoff_pair(space: PatchSpace) -> tuple[np.ndarray, np.ndarray]:
    """Two map points whose decoded patches differ mostly in filter cutoff."""
    axis = np.linspace(0.05, 0.95, 19)
    xy = np.array([(x, y) for x in axis for y in axis])
    dec = space.decode_unit(xy)
    cut = params.INDEX["filter_cutoff"]
    cats = list(params.CATEGORICAL)
    best: tuple[float, int, int] | None = None
    span = params.MAXIMA - params.MINIMA
    for i in range(len(xy)):
        same = (dec[:, cats] == dec[i, cats]).all(axis=1)
        for j in np.nonzero(same)[0]:
            if dec[j, cut] - dec[i, cut] < 0.4:
                continue
            others = np.delete(np.abs(dec[j] - dec[i]) / span, [cut, *cats]).max()
            score = (dec[j, cut] - dec[i, cut]) - others
            if best is None or score > best[0]:
                best = (score, i, int(j))
    assert best is not None, "no two map points share categoricals and differ in cutoff"
    return xy[best[1]], xy[best[2]]


def test_latent_moves_change_the_sound_as_the_decoded_cutoff_says(
    cfg: config.Config, space: PatchSpace
) -> None:
    lo, hi = _cutoff_pair(space)
    cut = params.INDEX["filter_cutoff"]
    d = space.decode_unit(np.stack([lo, hi]))
    assert d[1, cut] > d[0, cut]
    fixed = [{"time": 0.0, "address": "/param", "args": [k, 0.0]} for k in ("reverb_wet",)]

    def centroid_at(xy: np.ndarray) -> float:
        ev = [{"time": 0.0, "address": "/latent", "args": [float(xy[0]), float(xy[1])]}, *fixed,
              {"time": 0.0, "address": "/note", "args": [48, 100]}]
        return spectral_centroid(render(cfg, ev, 0.6)[SR // 5 :], SR)

    assert centroid_at(hi) > 1.15 * centroid_at(lo)
    # And live: the same note, moved from lo to hi while it sounds.
    ev = [{"time": 0.0, "address": "/latent", "args": [float(lo[0]), float(lo[1])]}, *fixed,
          {"time": 0.0, "address": "/note", "args": [48, 100]},
          {"time": 0.5, "address": "/latent", "args": [float(hi[0]), float(hi[1])]}]
    audio = render(cfg, ev, 1.0)
    assert spectral_centroid(audio[int(0.7 * SR) :], SR) > 1.15 * spectral_centroid(audio[int(0.3 * SR) : SR // 2], SR)


def test_alpha_zero_and_one_are_source_and_target(cfg: config.Config, space: PatchSpace) -> None:
    """/alpha 0 and 1 decode the sources' own map points; between them the patch moves.

    The claim is about the latent point, so the decoded patches are compared, in each parameter's
    units: within a thousandth of its range (far below what a knob resolves, far above float
    rounding through encode -> unit square -> latent, whatever kernels the CPU picks). The sound
    is then compared as a spectrum in dB, not sample by sample: a resonant filter turns that same
    rounding into sample differences whose size depends on the machine.
    """
    from timbrespace.engines.patch import PatchEngine
    from timbrespace.patch.library import PresetLibrary
    from timbrespace.render import LocalLink

    lib = PresetLibrary(cfg.patch.banks, cfg.patch.user_bank)
    a, b = 10, 500
    xy = space.encode_unit(np.stack([lib[a].values, lib[b].values]))
    engine = PatchEngine(space, lib, LocalLink(), block_period=256 / SR, clock=lambda: 0.0)
    handle = engine.handlers()

    def decoded(address: str, *args: Any) -> npt.NDArray[np.float64]:
        handle[address](args, local())
        engine.flush()
        return engine.values.copy()

    handle["/source"]((a,), local())
    handle["/target"]((b,), local())
    span = np.array([p.maximum - p.minimum for p in params.PARAMS])
    for alpha, point in ((0.0, xy[0]), (1.0, xy[1])):
        blend = decoded("/alpha", alpha)
        direct = decoded("/latent", float(point[0]), float(point[1]))
        assert np.all(np.abs(blend - direct) <= 1e-3 * span), (alpha, np.abs(blend - direct) / span)
    mid, zero = decoded("/alpha", 0.5), decoded("/alpha", 0.0)
    assert np.max(np.abs(mid - zero) / span) > 0.05  # half way is another patch, not the source

    note = {"time": 0.0, "address": "/note", "args": [60, 100]}
    ends = [{"time": 0.0, "address": "/source", "args": [a]}, {"time": 0.0, "address": "/target", "args": [b]}]
    for alpha, point in ((0.0, xy[0]), (1.0, xy[1])):
        heard = render(cfg, [*ends, {"time": 0.0, "address": "/alpha", "args": [alpha]}, note], 0.5)
        direct_audio = render(cfg, [{"time": 0.0, "address": "/latent", "args": [float(point[0]), float(point[1])]},
                                    note], 0.5)
        assert_same_spectrum(heard, direct_audio, within_db=1.0)


def test_patch_load_plays_the_exact_preset(cfg: config.Config) -> None:
    note = {"time": 0.0, "address": "/note", "args": [60, 100]}
    a = render(cfg, [{"time": 0.0, "address": "/patch/load", "args": [3]}, note], 0.3)
    b = render(cfg, [{"time": 0.0, "address": "/patch/load", "args": [3]},
                     {"time": 0.0, "address": "/latent", "args": [0.5, 0.5]},
                     {"time": 0.0, "address": "/patch/load", "args": [3]}, note], 0.3)
    assert np.array_equal(a, b)


def test_bad_events_are_reported_not_fatal(cfg: config.Config) -> None:
    result = render_score(cfg, parse_score([{"time": 0, "address": "/note", "args": [200, 1]},
                                            {"time": 0.1, "address": "/nope"}]))
    assert len(result.failures) == 2
    assert "out of range" in result.failures[0]


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ("- {time: -1, address: /note}", "event 0: time: expected a number of seconds >= 0"),
        ("- {time: 0, address: note}", "event 0: address must be a string starting with '/'"),
        ("- {time: 0, adress: /note}", "unknown key 'adress'"),
        ("- 3", "expected a mapping"),
        ("{duration: 9999}", "longer than"),
        ("[", "not valid YAML"),
    ],
)
def test_bad_scores_name_the_problem(tmp_path: Path, data: str, needle: str) -> None:
    p = tmp_path / "s.yaml"
    p.write_text(data)
    with pytest.raises(ScoreError) as e:
        load_score(p)
    assert needle in str(e.value)
