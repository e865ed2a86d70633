"""``timbrespace map``: the 2-D map as a picture, as in the seed paper's Fig. 6.

Left: every preset at the point where it encodes. Right: a heat map of a descriptor of the sound
decoded at each grid point (spectral centroid of a rendered note, in Hz on a log scale), with the
presets over it. The grid's sounds are rendered through the real synth, block by block.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import numpy.typing as npt

from timbrespace.config import Config
from timbrespace.patch import params

NOTE = 57  # A3: low enough that a wide-open filter still shows in the centroid
NOTE_SECONDS = 0.4


def spectral_centroid(audio: npt.NDArray[np.float32], sample_rate: int, frame: int = 2048) -> float:
    """Mean over frames of the magnitude-weighted mean frequency (librosa's definition), in Hz.

    Magnitude rather than power weighting, so the harmonics a filter opens or closes count
    against a loud fundamental; silent frames are skipped; 0 for silence.
    """
    mono = audio.mean(axis=1) if audio.ndim == 2 else audio
    n = mono.size // frame
    if n == 0:
        return 0.0
    frames = mono[: n * frame].reshape(n, frame) * np.hanning(frame)
    mag = np.abs(np.fft.rfft(frames, axis=1))
    total = mag.sum(axis=1)
    keep = total > 1e-6 * max(float(total.max()), 1e-30)
    if not keep.any():
        return 0.0
    freqs = np.fft.rfftfreq(frame, 1.0 / sample_rate)
    return float(((mag[keep] @ freqs) / total[keep]).mean())


def grid_points(grid: int) -> npt.NDArray[np.float64]:
    """The centres of a ``grid`` x ``grid`` lattice of the unit square, ``(grid * grid, 2)``, row by row in y."""
    axis = (np.arange(grid) + 0.5) / grid
    xx, yy = np.meshgrid(axis, axis)
    return np.stack([xx.ravel(), yy.ravel()], axis=1)


def patch_centroids(patches: npt.NDArray[np.float64], sample_rate: int = 48000,
                    block_size: int = 256) -> npt.NDArray[np.float64]:
    """Centroid of a note (MIDI :data:`NOTE`) played by each patch ``(N, 41)`` on the project's voice, ``(N,)``."""
    from timbrespace.audio.offline import OfflineRenderer
    from timbrespace.audio.synth import PatchSynth

    patches = np.array(patches, dtype=np.float64)
    blocks = math.ceil(NOTE_SECONDS * sample_rate / block_size)
    out = np.zeros(len(patches))
    with OfflineRenderer(sample_rate=sample_rate, block_size=block_size, channels=2) as r:
        synth = PatchSynth(polyphony=1, sample_rate=sample_rate)
        # The descriptor is about the held sound; a short release keeps the grid quick.
        patches[:, params.INDEX["amp_release"]] = 0.0
        for i, values in enumerate(patches):
            synth.set_patch(values)
            capture = r.capture(synth.output, blocks * block_size / sample_rate)
            synth.note_on(NOTE, 100)
            for _ in range(blocks):
                r.process_block()
            out[i] = spectral_centroid(capture.array(), sample_rate)
            synth.note_off(NOTE)
            for _ in range(blocks):  # let the release end before the next patch
                if synth.active_voices == 0:
                    break
                r.process_block()
    return out


def grid_centroids(cfg: Config, grid: int) -> npt.NDArray[np.float64]:
    """Centroid of a note rendered from the patch decoded at each grid point, shape (grid, grid)."""
    from timbrespace.models.patch_space import PatchSpace

    space = PatchSpace.load(cfg.patch.model, device="cpu", num_threads=cfg.inference.threads)
    patches = space.decode_unit(grid_points(grid))
    return patch_centroids(patches, cfg.audio.sample_rate, cfg.audio.block_size).reshape(grid, grid)


def draw_map(cfg: Config, out: Path, *, grid: int = 24) -> None:
    """Write the map PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from timbrespace.models.patch_space import PatchSpace
    from timbrespace.patch.library import PresetLibrary

    if not 4 <= grid <= 128:
        raise ValueError(f"--grid {grid} is out of range [4, 128]")
    library = PresetLibrary(cfg.patch.banks, cfg.patch.user_bank)
    space = PatchSpace.load(cfg.patch.model, device="cpu", num_threads=cfg.inference.threads)
    xy = space.encode_unit(np.stack([library[i].values for i in range(len(library))]))
    centroids = grid_centroids(cfg, grid)
    fig, (a, b) = plt.subplots(1, 2, figsize=(13, 6), constrained_layout=True)
    a.scatter(xy[:, 0], xy[:, 1], s=4, alpha=0.6)
    placed = "placed by ear" if space.index is not None else "encoded"
    a.set(title=f"{len(library)} amSynth presets, {placed}", xlabel="x (/latent)", ylabel="y (/latent)",
          xlim=(0, 1), ylim=(0, 1), aspect="equal")
    im = b.imshow(np.log10(np.maximum(centroids, 20.0)), origin="lower", extent=(0, 1, 0, 1),
                  cmap="magma", aspect="equal")
    b.scatter(xy[:, 0], xy[:, 1], s=1, c="white", alpha=0.25)
    b.set(title=f"spectral centroid of decoded patches (MIDI {NOTE})", xlabel="x", ylabel="y")
    cb = fig.colorbar(im, ax=b)
    ticks = [100, 300, 1000, 3000, 10000]
    cb.set_ticks([math.log10(t) for t in ticks], labels=[f"{t} Hz" for t in ticks])
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(out)
