"""A VAE over amSynth patches with a 2-D latent space (after Peachey, Oore & Malloch).

Encoder: features -> hidden layers -> (mu, log variance) in 2-D.  Decoder:
z -> hidden layers -> continuous columns (sigmoid, in [0, 1]) and one logit
block per stepped parameter.  Loss: summed squared error over continuous
columns (weighted), summed cross-entropy over the categorical groups, and
beta x KL divergence to N(0, I).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from timbrespace.models.registry import register


def _mlp(sizes: Sequence[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(sizes):
        layers += [nn.Linear(a, b), nn.SiLU()]
    return nn.Sequential(*layers)


@dataclass(frozen=True)
class VAEOutput:
    """One forward pass: reconstructions and the posterior."""

    continuous: Tensor  # (N, n_continuous) in [0, 1]
    logits: Tensor  # (N, sum(group_sizes))
    mu: Tensor  # (N, latent_dim)
    logvar: Tensor  # (N, latent_dim)


@register("patch-vae")
class PatchVAE(nn.Module):
    """VAE with continuous and categorical heads; constructor kwargs are its whole config."""

    _grid: Tensor
    _flat: Tensor

    def __init__(
        self,
        n_continuous: int,
        group_sizes: Sequence[int],
        latent_dim: int = 2,
        hidden: Sequence[int] = (256, 128),
    ) -> None:
        super().__init__()
        self.n_continuous = int(n_continuous)
        self.group_sizes = [int(s) for s in group_sizes]
        self.latent_dim = int(latent_dim)
        n_in = self.n_continuous + sum(self.group_sizes)
        h = [int(x) for x in hidden]
        self.encoder = _mlp([n_in, *h])
        self.to_mu = nn.Linear(h[-1], self.latent_dim)
        self.to_logvar = nn.Linear(h[-1], self.latent_dim)
        self.decoder = _mlp([self.latent_dim, *reversed(h)])
        self.head = nn.Linear(h[0], n_in)
        # Column of each (group, level) in a padded (groups x widest) grid; padding points at an
        # extra -inf column, so one cross-entropy call covers every group (11 calls are slow).
        width = max(self.group_sizes, default=1)
        grid = torch.full((len(self.group_sizes), width), sum(self.group_sizes), dtype=torch.long)
        start = 0
        for k, size in enumerate(self.group_sizes):
            grid[k, :size] = torch.arange(start, start + size)
            start += size
        self.register_buffer("_grid", grid, persistent=False)
        # Where each categorical column sits in the flattened grid (to turn grid softmaxes back into columns).
        flat = torch.cat([torch.arange(size) + k * width for k, size in enumerate(self.group_sizes)]) \
            if self.group_sizes else torch.zeros(0, dtype=torch.long)
        self.register_buffer("_flat", flat.long(), persistent=False)

    def padded_logits(self, logits: Tensor) -> Tensor:
        """Categorical logits as ``(N, groups, widest group)``, missing levels at -inf."""
        pad = logits.new_full((logits.shape[0], 1), float("-inf"))
        return torch.cat([logits, pad], dim=1)[:, self._grid]

    def probabilities(self, logits: Tensor) -> Tensor:
        """Each stepped parameter's softmax, in the categorical columns' layout ``(N, sum(group_sizes))``."""
        p = torch.softmax(self.padded_logits(logits), dim=2)
        return p.reshape(p.shape[0], -1)[:, self._flat]

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Posterior mean and log variance of features ``x``."""
        h = self.encoder(x)
        return self.to_mu(h), self.to_logvar(h).clamp(-12.0, 8.0)

    def decode(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """Continuous reconstructions in [0, 1] and categorical logits for latent points ``z``."""
        out = self.head(self.decoder(z))
        return torch.sigmoid(out[:, : self.n_continuous]), out[:, self.n_continuous :]

    def forward(self, x: Tensor, sample: bool = True) -> VAEOutput:
        """Encode, sample (or take the mean when ``sample`` is False), decode."""
        mu, logvar = self.encode(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if sample else mu
        continuous, logits = self.decode(z)
        return VAEOutput(continuous, logits, mu, logvar)


@dataclass(frozen=True)
class LossParts:
    """Per-sample means of each loss term, and the weighted total."""

    total: Tensor
    continuous: Tensor
    categorical: Tensor
    kl: Tensor


def vae_loss(
    model: PatchVAE,
    out: VAEOutput,
    target_continuous: Tensor,
    target_classes: Tensor,
    *,
    beta: float = 1.0,
    continuous_weight: float = 1.0,
) -> LossParts:
    """The VAE's loss; sums over columns/groups/latent dims, means over the batch."""
    n = target_continuous.shape[0]
    mse = F.mse_loss(out.continuous, target_continuous, reduction="sum") / n
    grid = model.padded_logits(out.logits)  # (N, G, W)
    ce = F.cross_entropy(grid.reshape(-1, grid.shape[-1]), target_classes.reshape(-1), reduction="sum") / n
    kl = -0.5 * torch.sum(1.0 + out.logvar - out.mu.pow(2) - out.logvar.exp()) / n
    return LossParts(continuous_weight * mse + ce + beta * kl, mse, ce, kl)
