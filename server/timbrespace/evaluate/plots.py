"""Figures of a timbre space (PNG, matplotlib's Agg canvas: no pyplot, no display, no global state).

* the space: valid z_t projected on its first two principal axes, coloured by instrument, with the means;
* a traversal of the z_t dimension most correlated with spectral centroid (as the paper's Figs 7-8);
* the /latent map: the bilinear blend of four corner instruments' means, coloured by the centroid
  of the decoded sound, with every instrument's mean placed at its nearest point of the blend.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from timbrespace.figures import colours as _colours
from timbrespace.figures import figure as _figure
from timbrespace.figures import plot_learned_map
from timbrespace.models.timbre_features import NoteSet
from timbrespace.models.timbre_gmvae import TimbreGMVAE
from timbrespace.models.timbre_map import TimbreMap
from timbrespace.models.timbre_render import noise_basis

FloatArray = npt.NDArray[np.float64]
DEFAULT_CORNERS = ("flute", "trumpet", "cello", "piano")
PITCH, FRAME = 60, 20  # the note and frame (~230 ms in: past the attack) the traversal and map decode


def control_centroid(model: TimbreGMVAE, amps: FloatArray, noise: FloatArray, f0: FloatArray) -> FloatArray:
    """Spectral centroid (Hz) of frames of controls: harmonic k carries power a_k^2 / 2 at k f0, the
    noise its band gains squared spread over the FFT bins (unit-variance white noise through them)."""
    spec = model.spec.stft
    freqs = np.linspace(0.0, spec.sample_rate / 2.0, spec.n_bins)
    k = np.arange(1, amps.shape[-1] + 1)
    hp = 0.5 * amps**2
    hf = f0[..., None] * k
    npow = (noise**2 @ noise_basis(spec, noise.shape[-1])) / spec.n_bins
    num = (hp * hf).sum(-1) + (npow * freqs).sum(-1)
    den = hp.sum(-1) + npow.sum(-1)
    return np.asarray(num / np.maximum(den, 1e-20))


def _decode_frames(model: TimbreGMVAE, z: FloatArray, pitch: float, frame: int) -> tuple[FloatArray, FloatArray]:
    n = z.shape[0]
    amps, noise = model.controls(torch.as_tensor(z, dtype=torch.float32), torch.full((n,), float(pitch)),
                                 torch.full((n,), frame, dtype=torch.long), 100.0)
    return amps.double().numpy(), noise.double().numpy()


def plot_space(path: Path, zt: FloatArray, labels: npt.NDArray[np.int64], means: FloatArray, names: list[str]) -> None:
    """Valid z_t and the mixture means on the first two principal axes of the valid notes."""
    centre = zt.mean(0)
    _, _, vt = np.linalg.svd(zt - centre, full_matrices=False)
    proj, mproj = (zt - centre) @ vt[:2].T, (means - centre) @ vt[:2].T
    fig = _figure(7.5, 6.0)
    ax = fig.add_subplot(1, 1, 1)
    for k, (name, c) in enumerate(zip(names, _colours(len(names)), strict=True)):
        sel = labels == k
        ax.scatter(proj[sel, 0], proj[sel, 1], s=14, color=c, alpha=0.7, label=name)
        ax.scatter(mproj[k, 0], mproj[k, 1], s=120, color=c, marker="X", edgecolors="black", linewidths=0.8)
    ax.set(title="Timbre space: valid notes' z_t (PCA), mixture means as X", xlabel="PC 1", ylabel="PC 2")
    ax.legend(fontsize=7, ncols=2, loc="best")
    fig.tight_layout()
    fig.savefig(path)


def centroid_dimension(model: TimbreGMVAE) -> tuple[int, float]:
    """The z_t dimension whose traversal moves the decoded spectral centroid most consistently.

    For each dimension, every instrument's mean is moved by -2..2 sigma along it and decoded (MIDI 60,
    frame 20); r is the Pearson correlation of offset with log centroid minus the instrument's own mean
    log centroid, pooled over instruments: within-instrument control, as the paper's z_t^13 (Figs 7-8).
    """
    means = model.component_means().timbre.double().numpy()
    sigma = float(np.exp(model.timbre_logvar / 2.0))
    offsets = np.linspace(-2.0, 2.0, 9)
    f0 = 440.0 * 2.0 ** ((PITCH - 69) / 12.0)
    k, o = means.shape[0], len(offsets)
    best = (0, 0.0)
    for d in range(means.shape[1]):
        z = np.repeat(means, o, 0)
        z[:, d] += np.tile(offsets, k) * sigma
        amps, noise = _decode_frames(model, z, PITCH, FRAME)
        logc = np.log(control_centroid(model, amps, noise, np.full(len(z), f0))).reshape(k, o)
        resid = (logc - logc.mean(1, keepdims=True)).reshape(-1)
        r = float(np.corrcoef(np.tile(offsets, k), resid)[0, 1]) if resid.std() > 0 else 0.0
        if abs(r) > abs(best[1]):
            best = (d, r)
    return best


def plot_traversal(path: Path, model: TimbreGMVAE, dim: int, r: float, names: list[str],
                   show: list[int]) -> dict[str, Any]:
    """Centroid vs offset of z_t[dim] from each shown instrument's mean (+-3 sigma), and a strip of
    the decoded mel spectra of the first one; returns the centroids plotted."""
    means = model.component_means().timbre.double().numpy()
    sigma = float(np.exp(model.timbre_logvar / 2.0))
    offsets = np.linspace(-3.0, 3.0, 13)
    f0 = 440.0 * 2.0 ** ((PITCH - 69) / 12.0)
    fig = _figure(11.0, 4.2)
    ax = fig.add_subplot(1, 2, 1)
    curves: dict[str, list[float]] = {}
    strip: FloatArray | None = None
    for k, c in zip(show, _colours(len(show)), strict=True):
        z = np.repeat(means[k : k + 1], len(offsets), 0)
        z[:, dim] += offsets * sigma
        amps, noise = _decode_frames(model, z, PITCH, FRAME)
        cent = control_centroid(model, amps, noise, np.full(len(offsets), f0))
        curves[names[k]] = [float(v) for v in cent]
        ax.plot(offsets, cent, marker="o", color=c, label=names[k])
        if strip is None:
            with torch.no_grad():
                pidx = torch.full((len(offsets),), model.pitches.index(PITCH) if PITCH in model.pitches else 0)
                mel = model.render_logmel(torch.as_tensor(amps, dtype=torch.float32).unsqueeze(1),
                                          torch.as_tensor(noise, dtype=torch.float32).unsqueeze(1), pidx)
            strip = mel[:, 0].double().numpy().T
    ax.set(xlabel=f"offset of z_t[{dim}] from the instrument's mean (sigma)", ylabel="spectral centroid (Hz)",
           yscale="log", title=f"Traversal of z_t[{dim}] (within-instrument r = {r:+.2f}), MIDI {PITCH}")
    ax.legend(fontsize=8)
    bx = fig.add_subplot(1, 2, 2)
    if strip is not None:
        bx.imshow(strip, origin="lower", aspect="auto", extent=(offsets[0], offsets[-1], 0, strip.shape[0]))
    bx.set(xlabel=f"offset of z_t[{dim}] (sigma)", ylabel="mel band",
           title=f"{names[show[0]]}: decoded log-mel at frame {FRAME}")
    fig.tight_layout()
    fig.savefig(path)
    return {"dimension": dim, "r": r, "offsets_sigma": [float(o) for o in offsets], "centroid_hz": curves}


def corner_points(means: FloatArray, corners: list[int], steps: int) -> tuple[FloatArray, FloatArray]:
    """``(steps*steps, 2)`` (x, y) on [0,1]^2 and the bilinear blend of the corners' means there
    (corners at (0,0), (1,0), (0,1), (1,1), as the engine's /latent)."""
    g = np.linspace(0.0, 1.0, steps)
    x, y = (a.reshape(-1, 1) for a in np.meshgrid(g, g))
    a, b, c, d = (means[i] for i in corners)
    z = (1 - x) * (1 - y) * a + x * (1 - y) * b + (1 - x) * y * c + x * y * d
    return np.hstack([x, y]), z


def plot_corner_map(path: Path, model: TimbreGMVAE, names: list[str], corners: list[int], steps: int = 33
                    ) -> dict[str, Any]:
    """The /latent map coloured by the spectral centroid of its decoded frame; every instrument's mean
    drawn at the grid point nearest to it in z_t (with that distance, in sigma)."""
    means = model.component_means().timbre.double().numpy()
    _, z = corner_points(means, corners, steps)
    f0 = 440.0 * 2.0 ** ((PITCH - 69) / 12.0)
    amps, noise = _decode_frames(model, z, PITCH, FRAME)
    cent = control_centroid(model, amps, noise, np.full(len(z), f0)).reshape(steps, steps)
    fine_xy, fine_z = corner_points(means, corners, 101)
    sigma = float(np.exp(model.timbre_logvar / 2.0))
    fig = _figure(7.0, 6.0)
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(cent, origin="lower", extent=(0, 1, 0, 1), cmap="magma", norm=_lognorm(cent))
    fig.colorbar(im, ax=ax, label="spectral centroid (Hz)")
    placed: dict[str, Any] = {}
    for k, name in enumerate(names):
        dist = np.linalg.norm(fine_z - means[k], axis=1)
        j = int(np.argmin(dist))
        px, py = fine_xy[j]
        corner = k in corners
        ax.scatter([px], [py], s=60 if corner else 30, color="white" if corner else "cyan", edgecolors="black")
        ax.annotate(f"{name} ({dist[j] / sigma:.1f}σ)", (px, py), fontsize=7, color="white",
                    xytext=(4, 4), textcoords="offset points")
        placed[name] = {"x": float(px), "y": float(py), "distance_sigma": float(dist[j] / sigma)}
    ax.set(xlabel="x", ylabel="y", title=f"/latent map ({', '.join(names[i] for i in corners)}), MIDI {PITCH}")
    fig.tight_layout()
    fig.savefig(path)
    return {"corners": [names[i] for i in corners], "centroid_range_hz": [float(cent.min()), float(cent.max())],
            "instruments": placed}


def _lognorm(values: FloatArray) -> Any:
    from matplotlib.colors import LogNorm

    return LogNorm(vmin=float(values.min()), vmax=float(max(values.max(), values.min() * 1.01)))


def write_plots(out_dir: Path, prefix: str, model: TimbreGMVAE, notes: NoteSet, zt: FloatArray,
                va: npt.NDArray[np.intp], learned: TimbreMap | None = None) -> dict[str, Any]:
    """The figures for one model into ``out_dir`` as ``{prefix}-space/-traversal/-map.png``, and
    ``{prefix}-learned-map.png`` with a learned map (``zt``: every note's posterior mean)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    names = list(notes.instruments)
    means = model.component_means().timbre.double().numpy()
    files = {kind: out_dir / f"{prefix}-{kind}.png" for kind in ("space", "traversal", "map")}
    plot_space(files["space"], zt[va], notes.instrument[va], means, names)
    dim, r = centroid_dimension(model)
    index = {n: i for i, n in enumerate(names)}
    corners = [index[c] for c in DEFAULT_CORNERS] if all(c in index for c in DEFAULT_CORNERS) else \
        [i % len(names) for i in range(4)]
    show = corners  # the corner instruments span bright to dark; the same four in both plots
    trav = plot_traversal(files["traversal"], model, dim, r, names, show)
    cmap = plot_corner_map(files["map"], model, names, corners)
    if learned is not None:
        from timbrespace.models.timbre_map import region_grid

        files["learned-map"] = out_dir / f"{prefix}-learned-map.png"
        regions, best = region_grid(model, learned, 128)
        places = learned.place(torch.as_tensor(zt[va], dtype=torch.float32)).double().numpy()
        plot_learned_map(files["learned-map"], regions.numpy(), best.double().numpy(), places,
                         notes.instrument[va], names)
    return {"files": {k: str(v) for k, v in files.items()}, "traversal": trav, "map": cmap}
