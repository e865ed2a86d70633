"""A learned 2-D map of a timbre space: the unit square onto the codes real notes take.

Beside the NSynth-Super arrangement (four corner instruments blended bilinearly, which
only reaches blends of those four), this map is learned from the notes themselves, as
pGESAM's 2-D timbre space is: a small VAE with a 2-D latent ``u`` fitted to the timbre
posteriors ``q(z_t|X)`` of a trained ``timbre-gmvae``'s training notes.  Its decoder takes a
point of the plane to a timbre code.  The square reaches the plane axis by axis through the
quantiles of the training notes' places (a piecewise-linear map through ``n_knots`` of
them): every note lies inside the square, and each instrument gets room in proportion to
its notes.  (The normal quantiles of the prior left the outermost instruments half outside:
a VAE's notes spread wider than its prior.)  Fitting reads the GMVAE only (a second,
separate model): the timbre space and everything measured on it stay as they were.

The reconstruction is scored with the GMVAE's own timbre component variance: the map
must bring a code back to within its instrument's spread, no closer, which is what lets a
2-D latent hold 12 instruments in 16 dimensions.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor, nn

from timbrespace.models.registry import register

if TYPE_CHECKING:
    from timbrespace.models.timbre_gmvae import TimbreGMVAE

FloatArray = npt.NDArray[np.float64]
MAP_NAME = "timbre-map.pt"


def map_path(model_path: str | os.PathLike[str]) -> Path:
    """Where the learned map of the timbre-gmvae checkpoint ``model_path`` lives (beside it)."""
    return Path(model_path).with_name(MAP_NAME)


def _mlp(n_in: int, hidden: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                         nn.Linear(hidden, n_out))


@register("timbre-map")
class TimbreMap(nn.Module):
    """Timbre codes <-> points of the unit square, through a 2-D VAE (see the module docstring)."""

    def __init__(self, latent_dim: int = 16, hidden: int = 128, n_knots: int = 33, code_sigma: float = 1.0) -> None:
        super().__init__()
        if n_knots < 2:
            raise ValueError(f"timbre-map n_knots={n_knots!r}: expected an integer >= 2")
        self.latent_dim, self.code_sigma = int(latent_dim), float(code_sigma)
        self.encoder = _mlp(latent_dim, hidden, 4)
        self.decoder = _mlp(2, hidden, latent_dim)
        # Codes are centred and scaled before the networks (set from the data when fitting).
        self.centre: Tensor
        self.scale: Tensor
        self.knots: Tensor
        self.register_buffer("centre", torch.zeros(latent_dim))
        self.register_buffer("scale", torch.ones(()))
        # Plane coordinate of each axis at square positions linspace(0, 1, n_knots); until fitted,
        # the normal quantiles between 2% and 98%.
        p = torch.linspace(0.02, 0.98, n_knots)
        self.register_buffer("knots", torch.special.ndtri(p).repeat(2, 1))

    def encode(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """Posterior mean and log variance (B, 2) in the plane of timbre codes ``z`` (B, latent_dim)."""
        h = self.encoder((z - self.centre) / self.scale)
        return h[:, :2], h[:, 2:].clamp(-12.0, 4.0)

    def decode(self, u: Tensor) -> Tensor:
        """Timbre codes (B, latent_dim) of points ``u`` (B, 2) of the plane."""
        out: Tensor = self.decoder(u) * self.scale + self.centre
        return out

    def plane(self, xy: Tensor) -> Tensor:
        """Points of the unit square (B, 2) -> the plane, through the knots."""
        k = self.knots.shape[1]
        t = xy.clamp(0.0, 1.0) * (k - 1)
        i = t.floor().long().clamp(max=k - 2)
        axes = torch.arange(2, device=xy.device)
        lo, hi = self.knots[axes, i], self.knots[axes, i + 1]
        return lo + (t - i) * (hi - lo)

    def square(self, u: Tensor) -> Tensor:
        """Points of the plane (B, 2) -> the unit square (clipped at its sides)."""
        k = self.knots.shape[1]
        cols = []
        for d in range(2):
            kn = self.knots[d]
            j = torch.searchsorted(kn, u[:, d].contiguous()).clamp(1, k - 1)
            lo, hi = kn[j - 1], kn[j]
            cols.append((j - 1 + (u[:, d] - lo) / (hi - lo)) / (k - 1))
        return torch.stack(cols, 1).clamp(0.0, 1.0)

    def set_knots(self, u: Tensor) -> None:
        """Place the knots at the quantiles of points ``u`` (N, 2): the square then spans them."""
        p = torch.linspace(0.0, 1.0, self.knots.shape[1], device=u.device)
        q = torch.quantile(u.t(), p, dim=1).t()  # (2, K)
        # Strictly increasing, so square() can invert plane().
        step = 1e-4 * (q[:, -1:] - q[:, :1]).clamp_min(1e-3)
        q = torch.cummax(q + step * torch.arange(q.shape[1], device=u.device), dim=1).values
        self.knots.copy_(q)

    def loss(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """Per-code reconstruction (nats, at the component variance) and KL to N(0, I) in the plane."""
        mu, logvar = self.encode(z)
        u = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        recon = (self.decode(u) - z).pow(2).sum(-1) / (2.0 * self.code_sigma**2)
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1)
        return recon, kl

    def point(self, x: float, y: float) -> FloatArray:
        """The timbre code at map point (x, y) of the unit square (float64, for the engine)."""
        with torch.inference_mode():
            xy = torch.tensor([[x, y]], dtype=torch.float32, device=self.centre.device)
            return self.decode(self.plane(xy))[0].double().cpu().numpy()

    def place(self, z: Tensor) -> Tensor:
        """Where timbre codes ``z`` (B, latent_dim) sit on the unit square (their posterior means)."""
        with torch.inference_mode():
            return self.square(self.encode(z)[0])


def region_grid(gmvae: TimbreGMVAE, tmap: TimbreMap, n: int) -> tuple[Tensor, Tensor]:
    """(n, n) index of the most responsible instrument at each cell centre, and that posterior
    (on the CPU; computed on the map's device).

    Row ``j`` is y = (j + 0.5) / n, column ``i`` x = (i + 0.5) / n.
    """
    c = (torch.arange(n, dtype=torch.float32, device=tmap.centre.device) + 0.5) / n
    yy, xx = torch.meshgrid(c, c, indexing="ij")
    xy = torch.stack([xx.reshape(-1), yy.reshape(-1)], 1)
    with torch.inference_mode():
        q = gmvae.instrument_posterior(tmap.decode(tmap.plane(xy)))
    best, arg = q.max(1)
    return arg.reshape(n, n).cpu(), best.reshape(n, n).cpu()


@dataclass(frozen=True)
class MapFit:
    """A fitted map and its training figures."""

    model: TimbreMap
    steps: int
    final_recon: float
    final_kl: float


def fit_map(
    mu: Tensor,
    logvar: Tensor,
    code_sigma: float,
    *,
    steps: int = 4000,
    batch: int = 256,
    hidden: int = 128,
    lr: float = 2e-3,
    seed: int = 0,
) -> MapFit:
    """Fit a :class:`TimbreMap` to codes drawn from the posteriors ``N(mu, exp(logvar))`` (N, D).

    Each step draws fresh codes from a batch of the notes' posteriors, so the map learns
    the space around the notes and not just their means.  Deterministic for a seed.
    """
    if mu.ndim != 2 or mu.shape != logvar.shape or mu.shape[0] < 2:
        raise ValueError(f"fit_map: expected (N >= 2, D) posterior means and log variances, got "
                         f"{tuple(mu.shape)} and {tuple(logvar.shape)}")
    if steps < 1 or batch < 1:
        raise ValueError(f"fit_map: steps={steps}, batch={batch}; expected integers >= 1")
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = TimbreMap(mu.shape[1], hidden, code_sigma=code_sigma)
    with torch.no_grad():
        model.centre.copy_(mu.mean(0))
        model.scale.copy_((mu - mu.mean(0)).pow(2).sum(-1).mean().sqrt().clamp_min(1e-6) / math.sqrt(2.0))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    std = torch.exp(0.5 * logvar)
    recon = kl = torch.zeros(())
    model.train()
    for _ in range(steps):
        i = torch.randint(0, mu.shape[0], (batch,), generator=gen)
        z = mu[i] + std[i] * torch.randn(mu[i].shape, generator=gen)
        recon, kl = model.loss(z)
        opt.zero_grad(set_to_none=True)
        torch.autograd.backward((recon + kl).mean())
        opt.step()
        sched.step()
    model.eval()
    with torch.no_grad():
        model.set_knots(model.encode(mu)[0])
    return MapFit(model, steps, float(recon.detach().mean()), float(kl.detach().mean()))
