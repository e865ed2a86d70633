"""Drawing that needs no model: matplotlib's Agg canvas (no pyplot, no display, no global state).

Training writes its figures through this module and evaluation through its own plots, which build
on it: training never imports evaluation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def figure(width: float, height: float) -> Any:
    """A figure on its own Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def colours(n: int) -> list[Any]:
    """``n`` distinct colours (tab10, or tab20 past ten)."""
    from matplotlib import colormaps

    cmap = colormaps["tab20" if n > 10 else "tab10"]
    return [cmap(i % cmap.N) for i in range(n)]


def plot_learned_map(path: Path, regions: npt.NDArray[np.int64], confidence: FloatArray, places: FloatArray,
                     labels: npt.NDArray[np.int64], names: list[str]) -> None:
    """The learned map: each cell coloured by its most responsible instrument (paler where that
    instrument's posterior is lower, i.e. toward blends), with notes' places and each instrument's
    median place."""
    from matplotlib.colors import to_rgb

    rgb = np.array([to_rgb(c) for c in colours(len(names))])
    img = rgb[regions] * confidence[..., None] + (1.0 - confidence[..., None])
    fig = figure(7.0, 7.0)
    ax = fig.add_subplot(1, 1, 1)
    ax.imshow(img, origin="lower", extent=(0, 1, 0, 1), interpolation="nearest")
    ax.scatter(places[:, 0], places[:, 1], s=3, c="k", alpha=0.35, linewidths=0)
    for k, name in enumerate(names):
        if np.any(labels == k):
            x, y = np.median(places[labels == k], axis=0)
            ax.annotate(name, (x, y), ha="center", va="center", fontsize=8,
                        bbox={"boxstyle": "round,pad=0.2", "fc": "white", "alpha": 0.8, "lw": 0})
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="x (/latent)", ylabel="y (/latent)",
           title="/map learned: most responsible instrument; dots: notes")
    fig.tight_layout()
    fig.savefig(path)
