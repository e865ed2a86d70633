"""The learned 2-D timbre map: the square <-> plane warp, fitting, and what it keeps of a timbre space."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from timbrespace.models import registry
from timbrespace.models.timbre_map import TimbreMap, fit_map

pytestmark = pytest.mark.numeric


def _clusters(k: int = 4, per: int = 60, dim: int = 16, spread: float = 6.0, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Posterior means of ``k`` instruments around means ``spread`` sigma apart, and their labels."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(k, dim, generator=g) * spread / np.sqrt(2.0)
    labels = torch.arange(k).repeat_interleave(per)
    mu = centres[labels] + 0.5 * torch.randn(k * per, dim, generator=g)
    return mu, torch.full_like(mu, np.log(0.1)), labels, centres


def test_the_square_and_the_plane_are_each_others_inverse() -> None:
    m = TimbreMap(16, 32, n_knots=9)
    g = torch.Generator().manual_seed(1)
    m.set_knots(torch.randn(500, 2, generator=g) * torch.tensor([3.0, 0.5]) + torch.tensor([1.0, -2.0]))
    xy = torch.rand(1000, 2, generator=g)
    assert torch.allclose(m.square(m.plane(xy)), xy, atol=1e-5)
    # monotone along each axis, and the square's corners at the points' extremes
    line = torch.stack([torch.linspace(0, 1, 101), torch.full((101,), 0.5)], 1)
    assert torch.all(torch.diff(m.plane(line)[:, 0]) > 0)
    assert m.knots[0, 0] < -2.0 and m.knots[0, -1] > 4.0 and m.knots[1, -1] - m.knots[1, 0] < 4.0
    # points past the square's sides clip to them
    assert torch.equal(m.square(torch.tensor([[-1e3, 1e3]])), torch.tensor([[0.0, 1.0]]))
    with pytest.raises(ValueError, match="n_knots=1: expected an integer >= 2"):
        TimbreMap(n_knots=1)


def test_a_fitted_map_keeps_every_instrument_and_gives_each_a_region() -> None:
    mu, logvar, labels, centres = _clusters()
    torch.set_num_threads(1)
    fit = fit_map(mu, logvar, code_sigma=1.0, steps=1500, seed=0)
    m = fit.model
    places = m.place(mu)
    assert torch.all((places >= 0) & (places <= 1))  # every note is on the square
    with torch.inference_mode():
        back = m.decode(m.encode(mu)[0])
    nearest = torch.cdist(back, centres).argmin(1)
    assert float((nearest == labels).float().mean()) >= 0.98
    # a grid over the square: every instrument owns a real share of it, and the codes stay near the notes
    c = (torch.arange(32) + 0.5) / 32
    xy = torch.stack(torch.meshgrid(c, c, indexing="xy"), -1).reshape(-1, 2)
    with torch.inference_mode():
        codes = m.decode(m.plane(xy))
    owner = torch.cdist(codes, centres).argmin(1)
    share = torch.bincount(owner, minlength=4).float() / len(owner)
    assert torch.all(share > 0.1), share
    # point() (the engine's float64 path) is the decoder at that point of the square
    with torch.inference_mode():
        want = m.decode(m.plane(torch.tensor([[0.3, 0.8]])))[0].double().numpy()
    # equal within a ten-thousandth of the prior's sigma: far below any audible move, above float32 rounding
    assert m.point(0.3, 0.8).dtype == np.float64 and np.allclose(m.point(0.3, 0.8), want, rtol=0, atol=1e-4)
    # deterministic for a seed
    again = fit_map(mu, logvar, code_sigma=1.0, steps=1500, seed=0).model
    assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), again.state_dict().values(), strict=True))
    assert isinstance(registry.create("timbre-map", latent_dim=16, hidden=8), TimbreMap)


def test_fitting_refuses_what_it_cannot_use() -> None:
    with pytest.raises(ValueError, match=r"expected \(N >= 2, D\) posterior means and log variances, got \(1, 4\)"):
        fit_map(torch.zeros(1, 4), torch.zeros(1, 4), 1.0)
    with pytest.raises(ValueError, match="steps=0, batch=8; expected integers >= 1"):
        fit_map(torch.zeros(5, 4), torch.zeros(5, 4), 1.0, steps=0, batch=8)
