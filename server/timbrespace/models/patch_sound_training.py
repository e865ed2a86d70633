"""The patch VAE's ears: hearing the training presets, fitting the proxy, and the loss terms that hear.

Options of ``timbrespace train patch-vae`` that make the map hear (the shipped map: sound 1, distance 0,
square 1):

* ``sound_weight`` (lambda): the squared difference, in standardised descriptors, between the
  proxy's hearing of the reconstruction (continuous outputs and categorical softmaxes) and the
  rendered descriptor of the input preset, summed over descriptors.  Reconstructions are pulled
  towards what sounds like the input, not only towards what is numerically near it.
* ``distance_weight``: within each batch, latent distances between posterior means held
  proportional to the presets' descriptor distances (both divided by their batch mean), so presets
  that sound alike sit together and a straight line through the map moves through sound evenly.

* ``square_weight``: the map is played everywhere on the pad, not only where presets encode. Each
  batch also decodes as many random points drawn uniformly over the square the live engine will
  play (the training presets' latent quantiles, as the checkpoint's bounds), and the proxy's
  hearing of each is pulled towards the nearest *held* training preset (one whose amplitude sustain
  holds a note), by the same summed squared descriptor error: away from the presets the decoder
  otherwise invents bright patches that die away while the key is held. (Training adds a pull of
  those points' keyboard mode towards poly, which one heard note cannot tell apart.)
* ``path_weight`` (off by default): random straight segments of that square are heard at a few evenly
  spaced points, and the summed squared second differences of the hearing are added: a line through
  the map (what ``/alpha`` plays) is pulled towards moving through sound at a constant rate, at the
  price of some of the square's variety (docs/patch-map.md, "Smooth paths").

Only the training split is rendered (its presets, random morphs between two of them, and presets
shrunk towards the mean, the kind of patch a 2-D decoder produces), so validation stays unseen.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor

from timbrespace.models import patch_hearing
from timbrespace.models.patch_codec import PatchCodec, clamp_batch
from timbrespace.models.patch_proxy import PatchProxy, fit_proxy
from timbrespace.models.patch_vae import PatchVAE, VAEOutput
from timbrespace.patch import params

FloatArray = npt.NDArray[np.float64]
HOLDS_NOTE = 0.05  # amplitude sustain under this: the note is gone well before the key is let go


@dataclass(frozen=True)
class Ears:
    """What training hears: the frozen proxy and the training presets' standardised descriptors."""

    proxy: PatchProxy
    target: Tensor  # (n_train, N_FEATURES), standardised; rows of silent presets are 0
    heard: Tensor  # (n_train,) bool: the preset rendered sound
    report: dict[str, Any]


def perturbations(values: FloatArray, seed: int) -> FloatArray:
    """Patches around ``values`` for the proxy: one morph and one shrunk copy per preset (seeded)."""
    rng = np.random.default_rng(seed)
    n = len(values)
    a, b = rng.integers(0, n, n), rng.integers(0, n, n)
    alpha = rng.uniform(0.0, 1.0, (n, 1))
    morph = clamp_batch((1.0 - alpha) * values[a] + alpha * values[b])
    cont = np.array([p.step == 0.0 for p in params.PARAMS])
    s = rng.uniform(0.0, 1.0, (n, 1))
    shrunk = values.copy()
    shrunk[:, cont] = (1.0 - s) * values[:, cont] + s * values[:, cont].mean(axis=0)
    return np.concatenate([morph, clamp_batch(shrunk)])


def hear_cached(values: FloatArray, renderer: str, cache: Path | None, log: Callable[[str], None],
                hear: Callable[..., FloatArray] = patch_hearing.hear, tag: str = "") -> FloatArray:
    """Descriptors of ``values`` by ``hear``, read from ``cache`` (an .npz) when it holds exactly these
    patches heard this way (``tag`` names a descriptor other than the training one)."""
    key = hashlib.sha256(values.tobytes() + renderer.encode() + tag.encode()).hexdigest()
    if cache is not None and cache.is_file():
        with np.load(cache) as z:
            if str(z["key"]) == key:
                log(f"hearing: {len(values)} renders from {cache}")
                return np.asarray(z["features"], dtype=np.float64)
    log(f"hearing: rendering {len(values)} patches ({renderer})")
    step = max(1, len(values) // 10)
    features = hear(values, renderer, progress=lambda i: None if i % step else log(f"  {i} of {len(values)}"))
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, key=np.array(key), features=features)
    return features


def prepare(train_values: FloatArray, codec: PatchCodec, *, seed: int, renderer: str, proxy_epochs: int,
            cache: Path | None = None, log: Callable[[str], None] = lambda _: None) -> Ears:
    """Render the training presets and their perturbations, fit the proxy, freeze it."""
    patches = np.concatenate([train_values, perturbations(train_values, seed)])
    features = hear_cached(patches, renderer, cache, log)
    x = codec.encode(patches)
    # A tenth held out once to report how well the proxy hears unseen patches; then fit on all.
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(patches))
    held, fit = order[: len(order) // 10], order[len(order) // 10 :]
    probe, _ = fit_proxy(x[fit], features[fit], epochs=proxy_epochs, seed=seed)
    ok = np.all(np.isfinite(features[held]), axis=1)
    with torch.inference_mode():
        pred = probe(torch.as_tensor(x[held][ok], dtype=torch.float32))
        truth = probe.standardise(torch.as_tensor(features[held][ok], dtype=torch.float32))
        held_mse = float(torch.mean((pred - truth) ** 2))
    log(f"proxy: held-out error {held_mse:.3f} (standardised; 1 = predicting the mean)")
    proxy, losses = fit_proxy(x, features, epochs=proxy_epochs, seed=seed)
    for p in proxy.parameters():
        p.requires_grad_(False)
    n = len(train_values)
    own = torch.as_tensor(features[:n], dtype=torch.float32)
    heard = torch.isfinite(own).all(dim=1)
    target = torch.where(heard[:, None], proxy.standardise(torch.nan_to_num(own)), torch.zeros_like(own))
    report = {"renderer": renderer, "renders": len(patches), "silent": int((~np.isfinite(features).all(axis=1)).sum()),
              "proxy_held_out_mse": held_mse, "proxy_train_mse": losses[-1], "descriptors": features.shape[1]}
    return Ears(proxy, target, heard, report)


def sound_error(model: PatchVAE, proxy: PatchProxy, out: VAEOutput, target: Tensor, heard: Tensor,
                hard: bool = False) -> Tensor:
    """Per-preset mean over the batch of the summed squared descriptor error of the reconstruction.

    ``hard``: the proxy hears the categoricals as played (one-hot of the most likely level, what the
    proxy was trained on) while the gradient flows through the softmax (straight-through).
    """
    err = ((_heard_decode(model, proxy, out.continuous, out.logits, hard) - target) ** 2).sum(dim=1)
    result: Tensor = (err * heard).sum() / heard.sum().clamp_min(1)
    return result


def _heard_decode(model: PatchVAE, proxy: PatchProxy, continuous: Tensor, logits: Tensor, hard: bool) -> Tensor:
    """The proxy's hearing (standardised descriptors) of decoded patches (see :func:`sound_error`'s ``hard``)."""
    p = model.probabilities(logits)
    if hard:
        grid = model.padded_logits(logits)
        one_hot = torch.zeros_like(grid).scatter_(2, grid.argmax(dim=2, keepdim=True), 1.0)
        p = p + (one_hot.reshape(len(p), -1)[:, model._flat] - p).detach()
    heard: Tensor = proxy(torch.cat([continuous, p], dim=1))
    return heard


def held_targets(ears: Ears, train_values: FloatArray, holds_note: float) -> Tensor:
    """The standardised descriptors of the training presets that render sound and hold a note."""
    held = torch.as_tensor(train_values[:, params.INDEX["amp_sustain"]] >= holds_note) & ears.heard
    if not bool(held.any()):
        raise ValueError(f"no training preset renders sound with an amplitude sustain of at least {holds_note}")
    return ears.target[held]


def square_error(model: PatchVAE, proxy: PatchProxy, z: Tensor, targets: Tensor, hard: bool = False) -> Tensor:
    """Mean over latent points ``z`` of the summed squared descriptor error of their decodes against the
    nearest of ``targets`` (standardised descriptors): every point should sound like some preset."""
    continuous, logits = model.decode(z)
    heard = _heard_decode(model, proxy, continuous, logits, hard)
    result: Tensor = torch.cdist(heard, targets).pow(2).min(dim=1).values.mean()
    return result


def path_error(model: PatchVAE, proxy: PatchProxy, start: Tensor, end: Tensor, steps: int,
               hard: bool = False) -> Tensor:
    """Mean over the segments ``start -> end`` (latent, ``(N, 2)`` each) of the summed squared second
    differences of the proxy's hearing at ``steps`` evenly spaced points: zero where the sound moves at a
    constant rate along the segment, large where it jumps (SPINVAE's path roughness, heard)."""
    t = torch.linspace(0.0, 1.0, steps)[None, :, None]
    points = (start[:, None, :] + t * (end - start)[:, None, :]).reshape(-1, 2)
    continuous, logits = model.decode(points)
    heard = _heard_decode(model, proxy, continuous, logits, hard).reshape(len(start), steps, -1)
    d2 = heard[:, 2:] - 2.0 * heard[:, 1:-1] + heard[:, :-2]
    result: Tensor = d2.pow(2).sum(dim=(1, 2)).mean()
    return result


def distance_error(mu: Tensor, target: Tensor, heard: Tensor) -> Tensor:
    """Mismatch of latent and descriptor distances within a batch, each over its own mean."""
    m, t = mu[heard], target[heard]
    if len(m) < 3:
        return mu.new_zeros(())
    i, j = torch.triu_indices(len(m), len(m), offset=1)
    dz = (m[i] - m[j]).pow(2).sum(dim=1).add(1e-9).sqrt()
    df = (t[i] - t[j]).pow(2).sum(dim=1).add(1e-9).sqrt()
    result: Tensor = torch.mean((dz / dz.mean() - df / df.mean()) ** 2)
    return result
