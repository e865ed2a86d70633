"""A differentiable ear: patch features (the codec's columns) -> the standardised sound descriptor.

Trained on renders (:mod:`timbrespace.models.patch_hearing`) of presets and of patches between and
around them, it lets the patch VAE's loss hear its reconstructions: the decoder's continuous outputs
and softmaxed categorical probabilities go in where one-hot columns went in training, so the
gradient reaches every head.  Targets are standardised (``mean``/``scale`` buffers, stored with the
weights), so every descriptor counts alike.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor, nn

from timbrespace.models.registry import register


@register("patch-proxy")
class PatchProxy(nn.Module):
    """MLP from ``n_in`` codec columns to ``n_out`` standardised descriptors."""

    mean: Tensor
    scale: Tensor

    def __init__(self, n_in: int, n_out: int, hidden: Sequence[int] = (256, 256)) -> None:
        super().__init__()
        sizes = [int(n_in), *(int(h) for h in hidden)]
        layers: list[nn.Module] = []
        for a, b in itertools.pairwise(sizes):
            layers += [nn.Linear(a, b), nn.SiLU()]
        layers.append(nn.Linear(sizes[-1], int(n_out)))
        self.net = nn.Sequential(*layers)
        self.register_buffer("mean", torch.zeros(int(n_out)))
        self.register_buffer("scale", torch.ones(int(n_out)))

    def forward(self, x: Tensor) -> Tensor:
        """Standardised descriptors of codec columns ``x`` ``(N, n_in)``."""
        out: Tensor = self.net(x)
        return out

    def standardise(self, features: Tensor) -> Tensor:
        """Raw descriptors (dB) on the scale the network predicts."""
        return (features - self.mean) / self.scale


def fit_proxy(
    x: npt.NDArray[np.float64],
    features: npt.NDArray[np.float64],
    *,
    epochs: int = 150,
    batch_size: int = 128,
    lr: float = 2e-3,
    hidden: Sequence[int] = (256, 256),
    seed: int = 0,
) -> tuple[PatchProxy, list[float]]:
    """Train a proxy on codec columns ``x`` and raw descriptors ``features`` (rows with NaN dropped).

    Runs in the caller's torch settings (threads, determinism); returns the model in eval mode and
    the training loss of each epoch (mean squared error on the standardised scale).
    """
    ok = np.all(np.isfinite(features), axis=1)
    if x.shape[0] != features.shape[0] or ok.sum() < 2:
        raise ValueError(f"expected matching rows with at least two heard patches, got {x.shape} and "
                         f"{features.shape} ({int(ok.sum())} heard)")
    xt = torch.as_tensor(x[ok], dtype=torch.float32)
    ft = torch.as_tensor(features[ok], dtype=torch.float32)
    torch.manual_seed(seed)
    model = PatchProxy(x.shape[1], features.shape[1], hidden)
    model.mean.copy_(ft.mean(dim=0))
    model.scale.copy_(ft.std(dim=0).clamp_min(1.0))  # a dB at least: a band that never moves is not signal
    target = model.standardise(ft)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    shuffle = torch.Generator().manual_seed(seed)
    losses: list[float] = []
    for epoch in range(epochs):
        for group in optimiser.param_groups:  # cosine decay: the last epochs settle instead of jitter
            group["lr"] = lr * 0.5 * (1.0 + np.cos(np.pi * epoch / epochs))
        model.train()
        order = torch.randperm(len(xt), generator=shuffle)
        total = 0.0
        for start in range(0, len(xt), batch_size):
            j = order[start : start + batch_size]
            loss = torch.mean((model(xt[j]) - target[j]) ** 2)
            optimiser.zero_grad(set_to_none=True)
            torch.autograd.backward(loss)
            optimiser.step()
            total += float(loss.detach()) * len(j)
        losses.append(total / len(xt))
    return model.eval(), losses
