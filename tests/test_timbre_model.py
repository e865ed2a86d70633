"""The timbre GMVAE: its renderer against real audio, its controls, checkpoints, and training (synthetic notes)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from timbrespace.models import registry
from timbrespace.models.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from timbrespace.models.timbre_features import FeatureSpec, NoteSet, load_notes, logmel
from timbrespace.models.timbre_gmvae import TimbreGMVAE, smooth_time_basis
from timbrespace.models.timbre_map import TimbreMap
from timbrespace.models.timbre_pitch import HarmonicSalience, pitch_circles
from timbrespace.models.timbre_render import SpectralRenderer, frame_mixing, midi_to_hz, mix_frames, render_audio
from timbrespace.models.timbre_space import TimbreSpace
from timbrespace.models.train_timbre import (
    _Tensors,
    epoch_order,
    labelled_mask,
    means_rows,
    refit_timbre_means,
    scored_frames,
    train,
)

from conftest import assert_inaudibly_close

pytestmark = pytest.mark.numeric

SR = 22050
SMALL = {"channels": 32, "hidden": 64, "dec_hidden": 64, "latent_dim": 16}


def _envelope(n: int, note_off: float) -> np.ndarray:
    t = np.arange(n) / SR
    env = np.minimum(t / 0.02, 1.0) * (0.6 + 0.4 * np.exp(-t / 0.3))
    return env * np.where(t < note_off, 1.0, np.exp(-(t - note_off) / 0.05))


def _tone(instrument: int, pitch: int, velocity: int, rng: np.random.Generator) -> np.ndarray:
    """2 s of a harmonic tone whose spectral envelope depends on the instrument."""
    n = int(2.0 * SR)
    t = np.arange(n) / SR
    f0 = float(midi_to_hz(pitch))
    out = np.zeros(n)
    for k in range(1, 40):
        if k * f0 >= SR / 2:
            break
        if instrument == 0:  # bright: 1/k
            a = 1.0 / k
        elif instrument == 1:  # hollow: odd harmonics
            a = (1.0 / k) if k % 2 else 0.02 / k
        else:  # a formant near 1.5 kHz
            a = np.exp(-0.5 * ((k * f0 - 1500.0) / 400.0) ** 2) + 0.05 / k
        out += a * np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi))
    out *= 0.25 * (velocity / 127.0) / max(1e-9, np.max(np.abs(out)))
    if instrument == 2:  # and a little breath noise
        out += 0.004 * (velocity / 127.0) * rng.standard_normal(n)
    return out * _envelope(n, 1.5)


def make_manifest(root: Path, pitches: range = range(55, 63), velocities: tuple[int, ...] = (64, 127)) -> Path:
    """A tiny note set in the soundfont manifest's shape: 3 instruments, one valid note in four."""
    names = ["bright", "hollow", "formant"]
    rng = np.random.default_rng(0)
    notes = []
    for i, name in enumerate(names):
        (root / name).mkdir(parents=True, exist_ok=True)
        for j, p in enumerate(pitches):
            for v in velocities:
                rel = f"{name}/{name}_{p:03d}_v{v}.wav"
                pcm = (np.clip(_tone(i, p, v, rng), -1, 1) * 32767).astype("<i2").tobytes()
                with wave.open(str(root / rel), "wb") as w:
                    w.setnchannels(1)
                    w.setsampwidth(2)
                    w.setframerate(SR)
                    w.writeframes(pcm)
                split = "valid" if (j + v + i) % 4 == 0 else "train"
                notes.append(
                    {
                        "file": rel,
                        "instrument": name,
                        "instrument_index": i,
                        "pitch": p,
                        "velocity": v,
                        "split": split,
                        "sha256": hashlib.sha256(pcm).hexdigest(),
                    }
                )
    doc = {
        "version": 1,
        "sample_rate": SR,
        "note_off_s": 1.5,
        "duration_s": 2.0,
        "soundfont": "synthetic",
        "soundfont_sha256": "0" * 64,
        "instruments": [
            {"index": i, "name": n, "program": 0, "bank": 0, "low": pitches[0], "high": pitches[-1]}
            for i, n in enumerate(names)
        ],
        "notes": notes,
        "dropped": [],
    }
    path = root / "manifest.json"
    path.write_text(json.dumps(doc))
    return path


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_manifest(tmp_path_factory.mktemp("synthetic"))


@pytest.fixture(scope="module")
def trained(manifest: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("trained")
    # The synthetic set doubles as the "unseen" one: what is checked is that its figures reach the card.
    return train(out, manifest=manifest, cache_dir=out / "cache", progress=False, epochs=25, batch_size=16,
                 unseen=[manifest], **SMALL)


def _model(pitches: list[int] | None = None, **kw: Any) -> TimbreGMVAE:
    torch.manual_seed(0)
    m = registry.create(
        "timbre-gmvae",
        pitches=pitches or list(range(55, 63)),
        n_instruments=3,
        log_lo=-11.5,
        log_hi=2.0,
        **{**SMALL, **kw},
    )
    assert isinstance(m, TimbreGMVAE)
    return m.eval()


# -- rendering ---------------------------------------------------------------------------------


def test_spectral_renderer_matches_the_fft_of_render_audio() -> None:
    spec = FeatureSpec()
    renderer = SpectralRenderer(spec.stft, 60, 48)
    pitch = 57.0
    table = renderer.harmonic_table(pitch)[None]

    def compare(a: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        audio = render_audio((a, n), midi_to_hz(pitch), SR, spec.hop)
        measured = np.exp(logmel(audio, spec, len(a)).astype(np.float64))[8:-8].mean(0) - spec.floor
        expected = renderer.mel_power(
            torch.tensor(a[None], dtype=torch.float32), torch.tensor(n[None], dtype=torch.float32), table
        )[0, 0].numpy()
        return measured, expected.astype(np.float64)

    # Harmonics: deterministic, so the match is to float precision (bands with energy: a pure harmonic
    # spectrum has deep gaps between its peaks).
    amps = np.zeros((60, 60))
    amps[:, :25] = 0.2 / np.arange(1, 26) ** 1.2
    measured, expected = compare(amps, np.zeros((60, 48)))
    keep = expected > 1e-6 * expected.max()
    err = np.log(measured[keep]) - np.log(expected[keep])
    assert np.abs(err).max() < 1e-2, np.abs(err).max()
    # Noise: random, so compared on the average of 2000 frames, above ~300 Hz (narrow low bands hold one or
    # two FFT bins and fluctuate most); the mean log error is the bias and must be ~0.
    noise = np.tile(np.linspace(1e-3, 4e-3, 48), (2000, 1))
    measured, expected = compare(np.zeros((2000, 60)), noise)
    err = np.log(measured[25:]) - np.log(expected[25:])
    assert abs(err.mean()) < 0.01 and np.abs(err).mean() < 0.04 and np.abs(err).max() < 0.2, err


def test_frame_mixing_predicts_the_analysis_of_moving_amplitudes() -> None:
    """A note that swells and wobbles by up to 30% frame by frame: at the harmonics' peaks the mixed expectation
    follows the audio's analysis, the frame-by-frame (stationary) one does not."""
    spec = FeatureSpec()
    renderer = SpectralRenderer(spec.stft, 60, 48)
    pitch, n = 57.0, 40
    table = renderer.harmonic_table(pitch)[None]
    rng = np.random.default_rng(3)
    amps = np.zeros((n, 60))
    amps[:, :10] = 0.2 / np.arange(1, 11)
    amps *= (np.minimum(0.3 + np.arange(n) / 8.0, 1.0) * (1.0 + 0.3 * rng.uniform(-1, 1, n)))[:, None]
    audio = render_audio((amps, np.zeros((n, 48))), midi_to_hz(pitch), SR, spec.hop)
    scored = n - 4  # the last frames' windows run past the rendered audio
    measured = (np.exp(logmel(audio, spec, n).astype(np.float64)) - spec.floor)[:scored]
    a = torch.tensor(amps[None], dtype=torch.float32)
    own, cross = frame_mixing(n, spec.hop, spec.n_fft)
    silent = torch.zeros(1, scored, 48)
    mixed = renderer.mel_power_sq(mix_frames(a, torch.arange(n), torch.arange(scored), own, cross), silent, table)[0]
    plain = renderer.mel_power(a[:, :scored], silent, table)[0]
    peaks = np.flatnonzero(plain[20].numpy() > 0.05 * float(plain[20].max()))  # bands at the harmonics' peaks
    err_mixed = np.abs(np.log(measured[:, peaks]) - np.log(mixed[:, peaks].numpy()))
    err_plain = np.abs(np.log(measured[:, peaks]) - np.log(plain[:, peaks].numpy()))
    assert err_mixed.mean() < 0.05 and err_plain.mean() > 4 * err_mixed.mean(), (err_mixed.mean(), err_plain.mean())
    # Once the window lies after note-on only the sidebands of the wobble are unmodelled; before it, also the
    # wider spectral peak of a window cut by the onset (up to ~0.45 nats at frame 0).
    assert err_mixed[3:].max() < 0.1, err_mixed.max(1)
    # Steady amplitudes: each row mixes to 1 once the window lies after the note-on.
    assert torch.allclose(own.sum(1)[4:] + 2 * cross.sum(1)[4:], torch.ones(n - 4), atol=1e-6)


def test_scored_frames_come_in_runs_and_cover_every_frame_alike() -> None:
    gen = torch.Generator().manual_seed(0)
    counts = torch.zeros(129)
    for _ in range(3000):
        f = scored_frames(129, 32, 8, gen)
        assert torch.all(f[1:] > f[:-1]) and int(f[0]) >= 0 and int(f[-1]) < 129
        assert int((torch.diff(f) > 1).sum()) <= 3  # 4 runs at most
        counts[f] += 1
    share = counts / 3000
    assert float(share.min()) > 0.2 and float(share.max()) < 0.3  # 4 of ~17 runs: 0.24 each


def test_epoch_notes_draw_every_note_once_before_any_twice() -> None:
    n, count = 10, 4
    drawn = torch.cat([epoch_order(n, count, e, seed=3) for e in range(1, 6)])  # 20 draws: two laps of 10
    assert sorted(drawn[:10].tolist()) == list(range(n)) and sorted(drawn[10:].tolist()) == list(range(n))
    assert drawn[:10].tolist() != drawn[10:].tolist()  # each lap its own order
    # An epoch's notes depend on (seed, epoch) alone, not on the epochs drawn before it.
    assert torch.equal(epoch_order(n, count, 4, seed=3), drawn[12:16])
    assert not torch.equal(epoch_order(n, count, 4, seed=4), drawn[12:16])
    # 0 (or as many as there are) means every note each epoch.
    assert sorted(epoch_order(n, 0, 7, seed=3).tolist()) == list(range(n))
    assert sorted(epoch_order(n, 25, 7, seed=3).tolist()) == list(range(n))


def test_smooth_time_basis_gives_smooth_controls() -> None:
    """The smooth basis varies little from frame to frame in the sustain; a free embedding per frame does not."""
    basis = smooth_time_basis(129, 16)
    assert basis.shape == (129, 16) and torch.all(basis.max(1).values > 0.5)
    z, pitch = torch.randn(2, 16), torch.tensor([55.0, 60.0])
    steps = {}
    for kind in ("smooth", "embedding"):
        m = _model(time_basis=kind).eval()
        amps = torch.stack([m.controls(z, pitch, t)[0] for t in range(129)], 1)[..., :8]
        steps[kind] = float((amps[:, 41:].log().diff(dim=1)).abs().mean())
    assert steps["smooth"] < 0.1 * steps["embedding"], steps


@pytest.mark.parametrize("pitch", [33.0, 57.0, 69.0, 81.5, 96.0])
def test_render_audio_plays_the_requested_pitch(pitch: float) -> None:
    amps = np.zeros((90, 30))
    amps[:, :8] = 0.3 / np.arange(1, 9)
    amps[:, 0] *= np.linspace(0.5, 1.0, 90)  # amplitudes move frame by frame: phase must stay continuous
    audio = render_audio((amps, np.zeros((90, 8))), midi_to_hz(pitch), SR, 256)
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio)), 1 << 21))
    f_expected = float(midi_to_hz(pitch))
    lo = int(f_expected * 0.9 / SR * (1 << 21))
    k = lo + int(np.argmax(spectrum[lo : int(f_expected * 1.1 / SR * (1 << 21))]))
    a, b, c = np.log(spectrum[k - 1 : k + 2])
    f = (k + 0.5 * (a - c) / (a - 2 * b + c)) * SR / (1 << 21)
    assert abs(1200 * np.log2(f / f_expected)) < 5.0
    assert np.max(np.abs(np.diff(audio))) < 2 * np.pi * f_expected * 8 / SR * 0.3 * 3  # no clicks


def test_render_audio_is_silent_above_nyquist() -> None:
    amps = np.zeros((20, 10))
    amps[:, 5:] = 0.5  # harmonics 6..10 of 2 kHz are all above 11.025 kHz
    assert np.max(np.abs(render_audio((amps, np.zeros((20, 4))), 2000.0, SR, 256))) == 0.0


# -- the model ---------------------------------------------------------------------------------


def test_controls_zero_harmonics_above_nyquist() -> None:
    m = _model()
    pitch = torch.tensor([100.0, 60.0, 127.0])  # 2637 Hz: harmonics 1-4 fit; 262 Hz: 42; 12.5 kHz: none
    amps, noise = m.controls(torch.randn(3, 16), pitch, 10)
    assert amps.shape == (3, 60) and noise.shape == (3, 48)
    assert torch.all(amps[0, 4:] == 0) and torch.all(amps[0, :4] > 0)
    assert torch.all(amps[1, 42:] == 0) and torch.all(amps[1, :42] > 0)
    assert torch.all(amps[2] == 0)
    assert torch.all(noise > 0)
    # decode() (training's path) masks the same way, frame by frame
    f0 = torch.as_tensor(midi_to_hz([100.0, 60.0, 127.0]), dtype=torch.float32)
    a2, _ = m.decode(torch.randn(3, 16), torch.randn(3, 16), torch.arange(5), f0, torch.full((3,), 100.0))
    assert torch.equal(a2 > 0, (amps > 0).unsqueeze(1).expand(3, 5, 60))


def test_encode_decode_shapes_and_component_counts() -> None:
    m = _model(pitches=[40, 45, 50])
    post = m.encode(torch.randn(5, 129, 256))
    assert post.mu_t.shape == post.logvar_p.shape == (5, 16)
    means = m.component_means()
    assert means.timbre.shape == (3, 16) and means.pitch.shape == (3, 16) and means.pitches == [40, 45, 50]
    f0 = torch.full((5,), 220.0)
    amps, noise = m.decode(post.mu_t, post.mu_p, torch.arange(200), f0, torch.full((5,), 64.0))
    assert amps.shape == (5, 200, 60) and noise.shape == (5, 200, 48)
    assert torch.equal(amps[:, 150], amps[:, 128])  # frames past the trained window hold the last one
    # controls() (the live path, with tabulated first-layer terms) agrees with decode(), and follows new weights
    pitch = torch.tensor([40.0, 44.0, 47.0, 52.0, 60.0])
    f0 = torch.as_tensor(midi_to_hz(pitch.numpy()), dtype=torch.float32)
    for _ in range(2):
        amps, noise = m.controls(post.mu_t, pitch, torch.tensor([0, 3, 7, 128, 300]), 64.0)
        zp = m.pitch_latent(pitch)
        ref = m.decode(post.mu_t, zp, torch.tensor([0, 3, 7, 128, 128]), f0, torch.full((5,), 64.0))
        dec_a, dec_n = ref[0][torch.arange(5), torch.arange(5)], ref[1][torch.arange(5), torch.arange(5)]
        assert_inaudibly_close(amps, dec_a)
        assert_inaudibly_close(noise, dec_n)
        with torch.no_grad():
            m.pitch_means.add_(0.3)
            m.decoder[0].weight.mul_(1.1)
    # Between integer pitches the decoder's outputs for the two neighbours are interpolated, not their means.
    z1 = post.mu_t[:1]
    with torch.inference_mode():
        rows = [torch.cat([z1, m.pitch_latent(torch.tensor([p])), m.time_table[7:8], torch.tensor([[0.5]])], 1)
                for p in (44.0, 45.0)]
        raw = [m.decoder(r) for r in rows]
        want = m._controls(torch.lerp(raw[0], raw[1], 0.3), torch.as_tensor(midi_to_hz([44.3]), dtype=torch.float32))
    got = m.controls(z1, torch.tensor([44.3]), 7, 63.5)
    assert_inaudibly_close(got[0], want[0])
    assert_inaudibly_close(got[1], want[1])
    # A batch mixing held and bent voices gives each what it gets alone.
    pair = m.controls(post.mu_t[:1].expand(2, -1), torch.tensor([44.0, 44.3]), 7, 63.5)
    alone = m.controls(z1, torch.tensor([44.0]), 7, 63.5)
    assert_inaudibly_close(pair[0][1:], got[0])
    assert_inaudibly_close(pair[0][:1], alone[0])
    # pitch latents interpolate between neighbouring components and clamp at the ends
    z = m.pitch_latent(torch.tensor([40.0, 42.5, 50.0, 90.0]))
    assert torch.allclose(z[1], 0.5 * (means.pitch[0] + means.pitch[1]))
    assert torch.equal(z[3], means.pitch[2])
    # the paper's learned pitch means are a config switch away; the default helix is fixed and well separated
    assert isinstance(_model(pitch_prior="learned").pitch_means, torch.nn.Parameter)
    helix = _model(pitches=list(range(21, 109))).component_means().pitch
    assert (torch.cdist(helix, helix) + 9 * torch.eye(88)).min() > 3.5 * np.exp(-2.0)


def test_harmonic_salience_peaks_at_the_played_pitch() -> None:
    """Whatever the spectral envelope (1/k, odd harmonics only), the harmonic sums peak at the note's pitch."""
    spec = FeatureSpec()
    salience = HarmonicSalience(spec.stft)
    grid = np.arange(12.0, 108.0, 0.5)
    assert salience.size == len(grid)
    rng = np.random.default_rng(0)
    for instrument in (0, 1):
        for pitch in (33, 45, 57, 69, 81, 93):
            x = torch.as_tensor(logmel(_tone(instrument, pitch, 100, rng), spec, 43))
            s = salience((x + 11.5) / 6.75 - 1.0)[10:40].mean(0)
            assert grid[int(s.argmax())] == pitch, (instrument, pitch, grid[int(s.argmax())])
            assert abs(float(s.mean())) < 1e-5  # level-free: each frame's mean is removed


def test_pitch_circles_use_every_dimension_and_keep_pitches_apart() -> None:
    means = pitch_circles(list(range(21, 109)), 16)
    assert means.shape == (88, 16) and torch.allclose(means.norm(dim=1), torch.full((88,), 8**0.5))
    gaps = torch.cdist(means, means) + 99 * torch.eye(88)
    assert float(gaps.min()) > 2.2  # > 16 sigma at the prior's sigma e^-2
    assert float(means.std(0).min()) > 0.1  # no dimension left to noise
    m = _model(pitch_prior="circles", pitch_input="salience")
    assert torch.equal(m.component_means().pitch, pitch_circles(list(range(55, 63)), 16))
    assert m.encode(torch.randn(2, 129, 256)).mu_p.shape == (2, 16)
    with pytest.raises(ValueError, match="pitch_input"):
        _model(pitch_input="cqt")


def test_mean_recon_decodes_labelled_notes_from_the_means_and_trains_the_decoder_only() -> None:
    m = _model().train()
    x = torch.randn(4, 129, 256)
    labels = torch.tensor([0, 2, -1, 1])
    args = (x, torch.arange(0, 129, 8), torch.tensor([0, 1, 2, 3]), torch.full((4,), 100.0), labels)
    torch.manual_seed(1)
    plain = m(*args)
    torch.manual_seed(1)
    terms = m(*args, mean_weight=0.5)
    assert torch.all(plain.mean_recon == 0) and torch.allclose(terms.recon, plain.recon)
    assert torch.all(terms.mean_recon[[0, 1, 3]] > 0) and terms.mean_recon[2] == 0  # unlabelled: no mean to use
    torch.manual_seed(1)
    some = m(*args, mean_weight=0.5, mean_rows=torch.tensor([True, False, True, True]))
    assert torch.allclose(some.recon, plain.recon) and some.mean_recon[1] == 0 and some.mean_recon[2] == 0
    assert torch.allclose(some.mean_recon[[0, 3]], terms.mean_recon[[0, 3]], rtol=1e-4)
    m.zero_grad()
    terms.mean_recon.sum().backward()
    assert m.timbre_means.grad is None or bool(torch.all(m.timbre_means.grad == 0))
    assert all(p.grad is None or bool(torch.all(p.grad == 0)) for p in m.timbre_encoder.parameters())
    assert any(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in m.decoder.parameters())


def test_unlabelled_notes_pay_the_y_term_and_labelled_do_not() -> None:
    m = _model()
    x = torch.randn(4, 129, 256)
    t = m(x, torch.arange(0, 129, 8), torch.tensor([0, 1, 2, 3]), torch.full((4,), 100.0), torch.tensor([0, 2, -1, -1]))
    assert torch.all(t.kl_y[:2] == 0) and torch.all(t.kl_y[2:] >= 0)
    assert torch.all(t.recon > 0) and torch.all(t.kl_pitch > 0) and torch.all(t.kl_timbre > 0)
    mask = labelled_mask(np.repeat(np.arange(4), 20), 0.25, 0)
    assert mask.reshape(4, 20).sum(1).tolist() == [5, 5, 5, 5]


def test_reconstruction_reaches_the_pitch_encoder_only_when_asked() -> None:
    x = torch.randn(4, 129, 256)
    args = (x, torch.arange(0, 129, 8), torch.tensor([0, 1, 2, 3]), torch.full((4,), 100.0), torch.tensor([0, 2, 1, 0]))
    for paper in (True, False):
        m = _model(pitch_recon_grad=paper).train()
        m(*args).recon.sum().backward()
        grads = [p.grad for p in m.pitch_encoder.parameters()]
        reached = any(g is not None and bool(g.abs().sum() > 0) for g in grads)
        assert reached == paper
        # The supervised pitch prior still trains it either way; the timbre encoder learns from both.
        m.zero_grad()
        m(*args).kl_pitch.sum().backward()
        assert any(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in m.pitch_encoder.parameters())


def test_refit_puts_each_timbre_mean_at_its_notes_average() -> None:
    m = _model().train()
    x = torch.randn(12, 129, 256)
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2])
    every = torch.ones(12, dtype=torch.bool)
    refit_timbre_means(m, _Tensors(x, torch.zeros(12, dtype=torch.long), torch.full((12,), 100.0), labels, every))
    assert m.training  # the mode it was called in is restored
    with torch.no_grad():
        mu = m.eval().encode(x).mu_t
    for k in range(3):
        assert torch.allclose(m.timbre_means[k], mu[labels == k].mean(0), atol=1e-5)
    # Unlabelled notes count by their responsibilities under the means they are refitted from.
    hidden = torch.tensor([0, 0, 0, -1, 1, 1, 1, -1, 2, 2, 2, -1])
    with torch.no_grad():
        q = m.instrument_posterior(mu)
        w = torch.where((hidden >= 0).unsqueeze(1), torch.nn.functional.one_hot(hidden.clamp_min(0), 3).float(), q)
        expect = (w.t() @ mu) / w.sum(0).unsqueeze(1)
    refit_timbre_means(m, _Tensors(x, torch.zeros(12, dtype=torch.long), torch.full((12,), 100.0), hidden, every))
    assert torch.allclose(m.timbre_means.detach(), expect, atol=1e-5)
    # Only the notes marked to place the means count (a mix's notes as rendered, not their room copies).
    some = torch.tensor([1, 1, 0, 0, 1, 0, 0, 0, 0, 1, 1, 1], dtype=torch.bool)
    refit_timbre_means(m, _Tensors(x, torch.zeros(12, dtype=torch.long), torch.full((12,), 100.0), labels, some))
    for k in range(3):
        assert torch.allclose(m.timbre_means[k], mu[(labels == k) & some].mean(0), atol=1e-5)
        assert not torch.allclose(m.timbre_means[k], mu[labels == k].mean(0), atol=1e-3)


def test_means_come_from_the_clean_notes_unless_an_instrument_has_none() -> None:
    n = 8
    notes = NoteSet(
        logmel=np.zeros((n, 2, 2), dtype=np.float32), instrument=np.array([0, 0, 0, 1, 1, 1, 2, 2]),
        pitch=np.full(n, 60), velocity=np.full(n, 100), train=np.ones(n, dtype=np.bool_),
        augmented=np.array([0, 1, 1, 0, 0, 1, 1, 1], dtype=np.bool_), files=[f"{k}.wav" for k in range(n)],
        instruments=["a", "b", "c"], manifest_sha256="", spec=FeatureSpec(),
    )
    idx = np.arange(n)
    assert means_rows(notes, idx, "clean").tolist() == [1, 0, 0, 1, 1, 0, 1, 1]  # c: only copies, so all of them
    assert means_rows(notes, idx, "all").all()
    assert means_rows(notes, idx[1:3], "clean").all()  # a's copies alone: nothing clean to prefer
    with pytest.raises(ValueError, match="means_from: expected 'clean' or 'all', got 'some'"):
        means_rows(notes, idx, "some")


def test_training_places_the_means_by_the_notes_as_rendered(manifest: Path, tmp_path: Path) -> None:
    """A set with augmented copies: the trained means sit at the clean notes' average posterior mean."""
    doc = json.loads(manifest.read_text())
    for k, n in enumerate(doc["notes"]):
        if n["split"] == "train" and k % 2:
            n["augment"] = {"gain_db": -3.0}  # a copy's record; the audio is the same file
    copy = tmp_path / "m" / "manifest.json"
    copy.parent.mkdir()
    copy.write_text(json.dumps(doc))
    for f in {n["file"].split("/")[0] for n in doc["notes"]}:
        (copy.parent / f).symlink_to(manifest.parent / f)
    runs = {how: load_checkpoint(train(tmp_path / how, manifest=copy, cache_dir=tmp_path / "cache", progress=False,
                                       learned_map=False, epochs=2, batch_size=16, means_from=how, **SMALL)).model
            for how in ("clean", "all")}
    notes = load_notes(copy, cache_dir=tmp_path / "cache")
    tr = notes.train
    for how, model in runs.items():
        assert isinstance(model, TimbreGMVAE)
        with torch.no_grad():
            mu = model.eval().encode(torch.as_tensor(notes.logmel)).mu_t.numpy()
        use = tr & ~notes.augmented if how == "clean" else tr
        for k in range(3):
            expect = mu[use & (notes.instrument == k)].mean(0)
            assert np.allclose(model.timbre_means[k].detach().numpy(), expect, atol=1e-4), (how, k)


def test_the_card_retrain_command_trains_the_same_config() -> None:
    import argparse
    from dataclasses import replace

    from timbrespace.models.train_timbre_options import FLAGS, TrainConfig, add_arguments, retrain_command

    cfg = replace(TrainConfig(), label_fraction=0.25, refit_means=False, epochs=7, dec_hidden=96, lr=5e-4)
    cmd = retrain_command(cfg, Path("models/x"), "var/data/soundfont/manifest.json")
    assert cmd == "--out models/x --epochs 7 --label-fraction 0.25 --no-refit-means --dec-hidden 96 --lr 0.0005"
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    # run() hands each option to train() by its dest, which must be the TrainConfig field it sets.
    defaults = parser.parse_args([])
    assert {f: getattr(defaults, f) for f in FLAGS} == {f: getattr(TrainConfig(), f) for f in FLAGS}
    ns = parser.parse_args(cmd.split())
    assert {k: getattr(ns, k) for k in ("label_fraction", "refit_means", "epochs", "dec_hidden", "lr", "out")} == {
        "label_fraction": 0.25, "refit_means": False, "epochs": 7, "dec_hidden": 96, "lr": 5e-4, "out": "models/x"}
    assert retrain_command(TrainConfig(), Path("m"), "other.json") == "--out m --manifest other.json"
    assert "in Python: frames_per_step=8" in retrain_command(replace(TrainConfig(), frames_per_step=8), Path("m"),
                                                              "var/data/soundfont/manifest.json")


def test_controls_timing_for_16_voices() -> None:
    m = _model(pitches=list(range(21, 109)), channels=128, hidden=256, dec_hidden=256)
    z, pitch = torch.randn(16, 16), torch.linspace(40, 80, 16)
    for _ in range(50):
        m.controls(z, pitch, 7)
    n = 500
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(n):
        m.controls(z, pitch, i)
    wall, cpu = (time.perf_counter() - t0) / n, (time.process_time() - c0) / n
    # Reported, not asserted: on a shared machine wall time includes waiting for a core; CPU time does not.
    print(f"\ncontrols(): 16 voices x 1 frame = {1e3 * wall:.3f} ms wall, {1e3 * cpu:.3f} ms CPU (1 thread)")


# -- features, checkpoints, training -----------------------------------------------------------


def test_features_are_cached(manifest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = load_notes(manifest, cache_dir=tmp_path)
    assert first.logmel.shape == (48, 129, 256) and first.instruments == ["bright", "hollow", "formant"]
    assert len(list(tmp_path.glob("*.npz"))) == 1
    import timbrespace.models.timbre_features as tf

    def boom(*_: Any) -> None:
        raise AssertionError("read a WAV despite the cache")

    monkeypatch.setattr(tf, "_note_features", boom)
    again = load_notes(manifest, cache_dir=tmp_path)
    assert np.array_equal(first.logmel, again.logmel)


def test_checkpoint_round_trip_is_strict_and_sha_checked(tmp_path: Path) -> None:
    m = _model()
    config = {"pitches": m.pitches, "n_instruments": 3, "log_lo": -11.5, "log_hi": 2.0, **SMALL}
    path = tmp_path / "t.pt"
    save_checkpoint(path, "timbre-gmvae", config, m)
    loaded = load_checkpoint(path).model
    assert isinstance(loaded, TimbreGMVAE)
    z, p = torch.randn(2, 16), torch.tensor([56.0, 60.0])
    assert torch.equal(loaded.controls(z, p, 3)[0], m.controls(z, p, 3)[0])
    # another config does not take these weights
    save_checkpoint(path, "timbre-gmvae", {**config, "n_harmonics": 40}, m)
    with pytest.raises(CheckpointError, match="do not fit"):
        load_checkpoint(path)
    save_checkpoint(path, "timbre-gmvae", config, m)
    data = bytearray(path.read_bytes())
    data[-100] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256 mismatch"):
        load_checkpoint(path)


def test_training_fits_the_learned_map_beside_the_model_and_it_is_used_only_with_it(
    trained: Path, tmp_path: Path
) -> None:
    out = trained.parent
    for name in ("timbre-map.pt", "timbre-map.pt.sha256", "timbre-map.png", "TIMBRE_MAP.md"):
        assert (out / name).is_file()
    ck = load_checkpoint(out / "timbre-map.pt")
    assert isinstance(ck.model, TimbreMap) and ck.metadata["parent_sha256"] == load_checkpoint(trained).sha256
    fig = ck.metadata["figures"]
    # This small model barely tells two of its instruments apart (means 2 sigma apart), so the border
    # notes may flip; a map that kept nothing would be at chance (1/3). test_timbre_map fits separable ones.
    assert fig["roundtrip_instrument_kept"] >= 0.6 and sum(fig["square_share"].values()) == pytest.approx(1.0)
    assert min(fig["square_share"].values()) > 0.1
    assert ck.sha256 in (out / "TIMBRE_MAP.md").read_text()
    space = TimbreSpace.load(trained, device="cpu")
    assert space.learned_map is not None and space.map_point(0.5, 0.5).shape == (space.latent_dim,)
    # a map of another model is refused with the reason; the model itself still loads
    copy = tmp_path / "m"
    copy.mkdir()
    for f in out.glob("timbre-gmvae.pt*"):
        (copy / f.name).write_bytes(f.read_bytes())
    other = ck.metadata | {"parent_sha256": "0" * 64}
    save_checkpoint(copy / "timbre-map.pt", "timbre-map", ck.config, ck.model, other)
    stale = TimbreSpace.load(copy / "timbre-gmvae.pt", device="cpu")
    assert stale.learned_map is None and "fitted to another timbre model" in stale.map_error
    with pytest.raises(ValueError, match="refit it: `timbrespace train timbre-map --model"):
        stale.map_point(0.5, 0.5)
    data = bytearray((copy / "timbre-map.pt").read_bytes())
    data[-50] ^= 1
    (copy / "timbre-map.pt").write_bytes(bytes(data))
    assert "sha256 mismatch" in TimbreSpace.load(copy / "timbre-gmvae.pt", device="cpu").map_error
    (copy / "timbre-map.pt").unlink()
    assert "no learned map at" in TimbreSpace.load(copy / "timbre-gmvae.pt", device="cpu").map_error


def test_how_often_validation_runs_does_not_change_the_weights(manifest: Path, tmp_path: Path) -> None:
    runs = {}
    for every in (1, 3):
        out = tmp_path / f"every{every}"
        kw = {"epochs": 4, "batch_size": 16, "val_every": every, "learned_map": False, **SMALL}
        runs[every] = train(out, manifest=manifest, cache_dir=tmp_path / "cache", progress=False, **kw)
    a, b = (load_checkpoint(p).model.state_dict() for p in (runs[1], runs[3]))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    lines = (runs[3].parent / "loss_curve.csv").read_text().splitlines()
    header = lines[0].split(",")
    val = header.index("val_loss")
    validated = [r.split(",")[0] for r in lines[1:] if r.split(",")[val]]
    assert validated == ["1", "3", "4"] and len(lines) == 5  # epoch 2 trained, not validated
    with pytest.raises(ValueError, match="val_every=0, expected an integer >= 1"):
        train(tmp_path / "bad", manifest=manifest, cache_dir=tmp_path / "cache", progress=False, val_every=0)


def test_training_lowers_the_loss_and_writes_the_model_directory(trained: Path, manifest: Path) -> None:
    out = trained.parent
    rows = (out / "loss_curve.csv").read_text().splitlines()
    header = rows[0].split(",")
    first, last = (dict(zip(header, map(float, r.split(",")), strict=True)) for r in (rows[1], rows[-1]))
    assert last["val_loss"] < 0.7 * first["val_loss"] and last["train_loss"] < 0.7 * first["train_loss"]
    for name in ("timbre-gmvae.pt", "timbre-gmvae.pt.sha256", "loss_curve.png", "MODEL_CARD.md"):
        assert (out / name).is_file()
    ck = load_checkpoint(trained)
    model = ck.model
    assert isinstance(model, TimbreGMVAE)
    # one pitch component per pitch in the data, one timbre component per instrument
    assert model.pitches == list(range(55, 63)) and model.component_means().timbre.shape[0] == 3
    m = ck.metadata
    assert m["data"]["manifest_sha256"] == hashlib.sha256(manifest.read_bytes()).hexdigest()
    assert set(m["latent_metrics"]) >= {"instrument_from_zt", "pitch_from_zp", "pitch_from_zt"}
    card = (out / "MODEL_CARD.md").read_text()
    assert ck.sha256 in card and "instrument from z_t" in card
    # The unseen set: measured with the trained weights by the function eval timbre reports, and in the card.
    from timbrespace.models.timbre_unseen import unseen

    figures = unseen(model, ck.metadata["instruments"], load_notes(manifest, cache_dir=None), "synthetic")
    assert m["unseen"]["synthetic"]["accuracy"] == figures["accuracy"]
    assert m["unseen"]["synthetic"]["notes"] == len(load_notes(manifest, cache_dir=None))
    assert "## Unseen sets" in card and f"accuracy {figures['accuracy']:.3f}" in card
    assert f"--unseen {manifest}" in m["training"]["command"]
    notes = load_notes(manifest, cache_dir=None)
    logmel_mean = torch.as_tensor(notes.logmel).mean()
    assert abs(ck.config["log_lo"]) > 0 and ck.config["log_hi"] > float(logmel_mean)


def test_training_is_deterministic_and_takes_a_label_fraction(manifest: Path, tmp_path: Path) -> None:
    kw: dict[str, Any] = {
        "manifest": manifest,
        "cache_dir": tmp_path / "c",
        "progress": False,
        "epochs": 2,
        "batch_size": 16,
        "label_fraction": 0.25,
        "learned_map": False,
        **SMALL,
    }
    a, b = train(tmp_path / "a", **kw), train(tmp_path / "b", **kw)
    wa, wb = load_checkpoint(a).model.state_dict(), load_checkpoint(b).model.state_dict()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)  # same weights (the files differ: they hold the run time)
    meta = load_checkpoint(a).metadata
    assert meta["training"]["labelled_notes"] < meta["data"]["n_train"] // 2


@pytest.mark.slow
def test_torchrun_trains_with_two_processes(manifest: Path, tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "timbrespace.models.train_timbre",
        "--manifest",
        str(manifest),
        "--out",
        str(tmp_path / "ddp"),
        "--cache",
        str(tmp_path / "cache"),
        "--epochs",
        "2",
        "--batch-size",
        "8",
        "--quiet",
    ]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    ck = load_checkpoint(tmp_path / "ddp" / "timbre-gmvae.pt")
    assert ck.metadata["training"]["world_size"] == 2
    # rank 0 fits the learned map while the other rank waits at the barrier
    assert load_checkpoint(tmp_path / "ddp" / "timbre-map.pt").metadata["parent_sha256"] == ck.sha256
    assert (tmp_path / "ddp" / "MODEL_CARD.md").is_file()
