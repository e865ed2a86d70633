"""The patch VAE's hearing: descriptors, the proxy, the loss terms, and a real training run that hears."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from timbrespace.fidelity import reference
from timbrespace.models import patch_hearing
from timbrespace.models.checkpoint import load_checkpoint, read_sidecar
from timbrespace.models.patch_codec import PatchCodec
from timbrespace.models.patch_proxy import PatchProxy, fit_proxy
from timbrespace.models.patch_sound_training import distance_error, path_error, perturbations, square_error
from timbrespace.models.patch_vae import PatchVAE
from timbrespace.models.train_patch_vae import poly_error, train
from timbrespace.patch import params
from timbrespace.patch.library import PresetLibrary

pytestmark = pytest.mark.numeric

FACTORY = Path("/usr/share/amsynth/banks")
SR = patch_hearing.SAMPLE_RATE


def _mel_centres() -> np.ndarray:
    import librosa

    return np.asarray(librosa.mel_frequencies(n_mels=patch_hearing.N_MELS + 2, fmax=SR / 2)[1:-1])


def test_descriptor_hears_pitch_and_envelope() -> None:
    t = np.arange(int(patch_hearing.DURATION * SR)) / SR
    low, high = np.sin(2 * np.pi * 200 * t), np.sin(2 * np.pi * 4000 * t)
    d_low, d_high = patch_hearing.describe(low), patch_hearing.describe(high)
    assert d_low is not None and d_high is not None
    assert d_low.shape == (patch_hearing.N_FEATURES,)
    centres = _mel_centres()
    mel = slice(0, patch_hearing.N_MELS)
    # The loudest band holds the tone: within one band's spacing of 200 Hz and of 4 kHz.
    assert abs(np.log2(centres[np.argmax(d_low[mel])] / 200)) < 0.5
    assert abs(np.log2(centres[np.argmax(d_high[mel])] / 4000)) < 0.5
    # A decaying tone's envelope falls part by part; a steady one's stays level (RMS-normalised: equal).
    decaying = patch_hearing.describe(low * np.exp(-3 * t))
    assert decaying is not None
    env = decaying[patch_hearing.N_MELS :]
    assert np.all(np.diff(env) < 0)
    assert np.ptp(d_low[patch_hearing.N_MELS :]) < 0.5
    # Loudness does not matter (the eval normalises it too).
    quiet = patch_hearing.describe(0.01 * low)
    assert quiet is not None and np.allclose(quiet, d_low, atol=1e-6)


def test_descriptor_refuses_silence_and_bad_input() -> None:
    assert patch_hearing.describe(np.zeros(SR)) is None
    assert patch_hearing.describe(np.full(SR, np.nan)) is None
    with pytest.raises(ValueError, match="mono audio"):
        patch_hearing.describe(np.zeros((SR, 2)))
    with pytest.raises(ValueError, match="unknown renderer 'nope'"):
        patch_hearing.hear(np.zeros((1, 41)), renderer="nope")
    with pytest.raises(ValueError, match=r"shape \(N, 41\)"):
        patch_hearing.hear(np.zeros((1, 40)))


def test_probabilities_are_each_groups_softmax() -> None:
    codec = PatchCodec()
    model = PatchVAE(codec.n_continuous, codec.group_sizes, hidden=(16,))
    logits = torch.randn(5, codec.n_categorical, generator=torch.Generator().manual_seed(0))
    p = model.probabilities(logits)
    assert p.shape == logits.shape
    for g in codec.groups:
        block = slice(g.start, g.start + g.size)
        assert torch.allclose(p[:, block], torch.softmax(logits[:, block], dim=1), atol=1e-6)


def test_distance_error_is_zero_only_for_proportional_distances() -> None:
    rng = torch.Generator().manual_seed(0)
    target = torch.randn(32, 2, generator=rng)
    heard = torch.ones(32, dtype=torch.bool)
    # A rotated, scaled copy keeps every distance's share of the mean: no error.
    rot = torch.tensor([[0.6, -0.8], [0.8, 0.6]])
    assert float(distance_error(3.0 * target @ rot, target, heard)) < 1e-6
    scrambled = target[torch.randperm(32, generator=rng)]
    assert float(distance_error(scrambled, target, heard)) > 0.1
    # Unheard presets are left out: scrambling only them changes nothing.
    heard[:4] = False
    moved = target.clone()
    moved[:4] = torch.randn(4, 2, generator=rng) * 10
    assert float(distance_error(moved, target, heard)) < 1e-6


def _small_model_and_proxy() -> tuple[PatchVAE, PatchProxy]:
    """A tiny seeded VAE and a proxy hearing 4 descriptors: enough to check a loss term's arithmetic."""
    codec = PatchCodec()
    torch.manual_seed(0)
    return PatchVAE(codec.n_continuous, codec.group_sizes, hidden=(16,)), PatchProxy(codec.n_features, 4, hidden=(8,))


def test_square_error_is_the_distance_to_the_nearest_target_and_pulls_towards_it() -> None:
    model, proxy = _small_model_and_proxy()
    z = torch.randn(6, 2, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        cont, logits = model.decode(z)
        heard = proxy(torch.cat([cont, model.probabilities(logits)], dim=1))
    far = heard + 100.0
    # Each point's own hearing among the targets: nothing to pull; one unit off in one descriptor: 1.
    assert float(square_error(model, proxy, z, torch.cat([far, heard])).detach()) == pytest.approx(0.0, abs=1e-6)
    off = heard[:1].clone()
    off[:, 0] += 1.0
    assert float(square_error(model, proxy, z[:1], torch.cat([far, off])).detach()) == pytest.approx(1.0, rel=1e-4)
    # The gradient reaches the decoder (the proxy is frozen in training, so only the decoder can move).
    square_error(model, proxy, z, off).backward()
    assert any(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in model.decoder.parameters())


def test_path_error_is_the_heard_second_difference_along_each_segment() -> None:
    model, proxy = _small_model_and_proxy()
    start = torch.randn(3, 2, generator=torch.Generator().manual_seed(1))
    end = torch.randn(3, 2, generator=torch.Generator().manual_seed(2))
    # A segment that goes nowhere hears one sound five times: nothing bends.
    assert float(path_error(model, proxy, start, start, 5).detach()) == pytest.approx(0.0, abs=1e-9)
    with torch.no_grad():
        t = torch.linspace(0.0, 1.0, 5)
        heard = []
        for a, b in zip(start, end, strict=True):
            points = a[None, :] + t[:, None] * (b - a)[None, :]
            cont, logits = model.decode(points)
            heard.append(proxy(torch.cat([cont, model.probabilities(logits)], dim=1)))
    expected = np.mean([float(((h[2:] - 2 * h[1:-1] + h[:-2]) ** 2).sum()) for h in heard])
    assert float(path_error(model, proxy, start, end, 5).detach()) == pytest.approx(expected, rel=1e-4)
    assert expected > 0  # a random decoder bends
    path_error(model, proxy, start, end, 5).backward()
    assert any(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in model.decoder.parameters())


def test_the_keyboard_mode_of_the_square_is_pulled_to_poly() -> None:
    codec = PatchCodec()
    torch.manual_seed(0)
    model = PatchVAE(codec.n_continuous, codec.group_sizes, hidden=(16,))
    group = next(k for k, g in enumerate(codec.groups) if g.param == params.INDEX["keyboard_mode"])
    z = torch.randn(32, 2, generator=torch.Generator().manual_seed(1))
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    before = float(poly_error(model, z, group).detach())
    for _ in range(20):
        opt.zero_grad()
        poly_error(model, z, group).backward()
        opt.step()
    assert float(poly_error(model, z, group).detach()) < 0.5 * before
    with torch.no_grad():
        levels = model.padded_logits(model.decode(z)[1])[:, group].argmax(dim=1)
    assert bool((levels == 0).all())  # level 0 is poly: every point plays several keys at once


def test_proxy_learns_a_mapping_better_than_the_mean() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (600, 6))
    w = rng.normal(size=(6, 3))
    features = 20 * np.tanh(x @ w) + rng.normal(0, 0.1, (600, 3))
    features[0] = np.nan  # a silent render: dropped, not learned
    torch.manual_seed(0)
    proxy, losses = fit_proxy(x[:500], features[:500], epochs=150, hidden=(32,))
    with torch.inference_mode():
        pred = proxy(torch.as_tensor(x[500:], dtype=torch.float32))
        truth = proxy.standardise(torch.as_tensor(features[500:], dtype=torch.float32))
    # Standardised targets: predicting the mean scores about 1; a smooth map is learnt to well under it.
    assert float(torch.mean((pred - truth) ** 2)) < 0.3
    assert losses[-1] < losses[0]
    with pytest.raises(ValueError, match="matching rows"):
        fit_proxy(x[:10], features[:9])


def test_perturbations_are_valid_patches_near_the_presets() -> None:
    lib = PresetLibrary([FACTORY]) if FACTORY.is_dir() else None
    if lib is None:
        pytest.skip("amSynth factory banks not installed")
    v = lib.values()[:50]
    p = perturbations(v, seed=0)
    assert p.shape == (100, 41)
    codec = PatchCodec()
    assert np.allclose(codec.decode(codec.scale_continuous(p), codec.encode(p)[:, codec.n_continuous :]), p)
    assert np.array_equal(p, perturbations(v, seed=0))


HEARING = {"epochs": 6, "hidden": (32,), "warmup_epochs": 2, "proxy_epochs": 20, "progress": False}


def test_training_that_hears_is_reproducible_and_records_it(one_bank: Path, tmp_path: Path) -> None:
    cache = tmp_path / "heard.npz"
    a = train(tmp_path / "a", banks=[one_bank], sound_weight=1.0, distance_weight=1.0, straight_through=True,
              square_weight=0.0, hearing_cache=cache, **HEARING)  # type: ignore[arg-type]
    assert cache.is_file()
    b = train(tmp_path / "b", banks=[one_bank], sound_weight=1.0, distance_weight=1.0, straight_through=True,
              square_weight=0.0, hearing_cache=cache, **HEARING)  # type: ignore[arg-type]
    assert read_sidecar(a) == read_sidecar(b)  # the cache changes nothing
    meta = load_checkpoint(a).metadata
    assert meta["training"]["sound_weight"] == 1.0 and meta["training"]["renderer"] == "amsynth"
    assert meta["training"]["straight_through"] is True
    soft = train(tmp_path / "soft", banks=[one_bank], sound_weight=1.0, distance_weight=1.0, straight_through=False,
                 square_weight=0.0, hearing_cache=cache, **HEARING)  # type: ignore[arg-type]
    assert read_sidecar(soft) != read_sidecar(a)  # what the proxy hears changes the gradient
    n_train = meta["data"]["n_train"]
    assert meta["hearing"]["renders"] == 3 * n_train
    assert 0.0 < meta["hearing"]["proxy_held_out_mse"] < 1.0  # the proxy hears better than the mean
    square = train(tmp_path / "square", banks=[one_bank], sound_weight=1.0, distance_weight=1.0,
                   straight_through=True, square_weight=1.0, hearing_cache=cache, **HEARING)  # type: ignore[arg-type]
    assert read_sidecar(square) != read_sidecar(a)  # the random points of the square are heard too
    assert load_checkpoint(square).metadata["training"]["square_weight"] == 1.0
    path = train(tmp_path / "path", banks=[one_bank], sound_weight=1.0, distance_weight=1.0, straight_through=True,
                 square_weight=1.0, path_weight=1.0, hearing_cache=cache, **HEARING)  # type: ignore[arg-type]
    assert read_sidecar(path) != read_sidecar(square)  # random segments of the square are heard too
    assert load_checkpoint(path).metadata["training"]["path_weight"] == 1.0
    between = train(tmp_path / "between", banks=[one_bank], sound_weight=1.0, distance_weight=1.0,
                    straight_through=True, square_weight=1.0, path_weight=1.0, path_ends="presets",
                    hearing_cache=cache, **HEARING)  # type: ignore[arg-type]
    assert read_sidecar(between) != read_sidecar(path)  # the segments run between presets instead
    assert load_checkpoint(between).metadata["training"]["path_ends"] == "presets"
    deaf = train(tmp_path / "c", banks=[one_bank], sound_weight=0.0, square_weight=0.0,
                 **HEARING)  # type: ignore[arg-type]
    assert read_sidecar(deaf) != read_sidecar(a)
    assert load_checkpoint(deaf).metadata["hearing"] is None
    with pytest.raises(ValueError, match="non-negative"):
        train(tmp_path / "d", banks=[one_bank], sound_weight=-1.0, **HEARING)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="path_steps 2"):
        train(tmp_path / "e", banks=[one_bank], path_weight=1.0, path_steps=2, **HEARING)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="path_ends 'corners': expected 'square' or 'presets'"):
        train(tmp_path / "e", banks=[one_bank], path_weight=1.0, path_ends="corners", **HEARING)  # type: ignore[arg-type]


def test_straight_through_hears_one_hot_but_passes_the_softmax_gradient() -> None:
    from timbrespace.models.patch_proxy import PatchProxy
    from timbrespace.models.patch_sound_training import sound_error
    from timbrespace.models.patch_vae import VAEOutput

    codec = PatchCodec()
    torch.manual_seed(0)
    model = PatchVAE(codec.n_continuous, codec.group_sizes, hidden=(16,))
    proxy = PatchProxy(codec.n_features, 3, hidden=(8,))
    cont = torch.rand(4, codec.n_continuous)
    logits = torch.randn(4, codec.n_categorical, requires_grad=True)
    out = VAEOutput(cont, logits, torch.zeros(4, 2), torch.zeros(4, 2))
    target, heard = torch.zeros(4, 3), torch.ones(4, dtype=torch.bool)
    hard = sound_error(model, proxy, out, target, heard, hard=True)
    # Forward: exactly what the proxy makes of the played (one-hot) patch.
    grid = model.padded_logits(logits.detach())
    one_hot = torch.zeros_like(grid).scatter_(2, grid.argmax(dim=2, keepdim=True), 1.0)
    played = torch.cat([cont, one_hot.reshape(4, -1)[:, model._flat]], dim=1)
    assert torch.allclose(hard, (proxy(played) ** 2).sum(dim=1).mean(), atol=1e-6)
    assert not torch.allclose(hard, sound_error(model, proxy, out, target, heard, hard=False))
    # Backward: the logits still get a gradient (an argmax alone would give none).
    torch.autograd.backward(hard)
    assert logits.grad is not None and float(logits.grad.abs().sum()) > 0


def test_both_renderers_hear_a_preset() -> None:
    if not FACTORY.is_dir() or not reference.available():
        pytest.skip("amSynth's factory banks and DSSI plugin are needed")
    v = PresetLibrary([FACTORY]).values()[:2]
    voice, amsynth = patch_hearing.hear(v, "voice"), patch_hearing.hear(v, "amsynth")
    assert voice.shape == amsynth.shape == (2, patch_hearing.N_FEATURES)
    assert np.all(np.isfinite(voice)) and np.all(np.isfinite(amsynth))
    assert np.array_equal(amsynth, patch_hearing.hear(v, "amsynth"))  # amSynth renders are repeatable
