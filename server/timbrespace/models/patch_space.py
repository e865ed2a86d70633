"""The 2-D patch space the live engine plays: unit-square points <-> amSynth patches.

The unit square ``[0, 1]^2`` maps linearly onto the latent rectangle where the
library's presets encode (bounds stored in the checkpoint at training time: by
the rule its metadata names, the 2nd to 98th percentiles of the posterior means
plus a small margin since the square-coverage change), so a controller's x/y
lands among real presets rather than in latent space only outliers reach.
Decoding is batched and returns valid patch vectors (clamped, categoricals
integral); a path between two points follows the route along which the sound
changes least (:mod:`timbrespace.models.patch_route`) and keeps its switches to the
ends' own levels (:mod:`timbrespace.models.patch_path`).  Encoding places a preset
where the checkpoint's sound index put it (where the map sounds most like it,
:mod:`timbrespace.models.patch_sound_index`) and any other patch at the encoder's
posterior mean.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from timbrespace.models import patch_path
from timbrespace.models.checkpoint import CheckpointError, LoadedCheckpoint, load_checkpoint
from timbrespace.models.patch_codec import PatchCodec
from timbrespace.models.patch_route import Router
from timbrespace.models.patch_sound_index import SoundIndex
from timbrespace.models.patch_vae import PatchVAE
from timbrespace.patch import params
from timbrespace.patch.library import PresetLibrary

FloatArray = npt.NDArray[np.float64]


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` means CUDA when available, else CPU; anything else is passed to torch."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _points(xy: npt.ArrayLike, what: str) -> FloatArray:
    a = np.asarray(xy, dtype=np.float64)
    if a.ndim == 1 and a.shape == (2,):
        a = a[None, :]
    if a.ndim != 2 or a.shape[1] != 2:
        raise ValueError(f"expected {what} of shape (N, 2), got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{what} must be finite")
    return a


class PatchSpace:
    """A trained patch VAE with its unit-square mapping; thread-safe for concurrent decodes."""

    def __init__(
        self, model: PatchVAE, low: npt.ArrayLike, high: npt.ArrayLike, device: torch.device, sha256: str = ""
    ) -> None:
        self.model = model.eval()
        self.codec = PatchCodec()
        self.low = np.asarray(low, dtype=np.float64).reshape(2)
        self.high = np.asarray(high, dtype=np.float64).reshape(2)
        if not np.all(self.high > self.low):
            raise ValueError(f"latent bounds must satisfy low < high, got {self.low} and {self.high}")
        self.device = device
        self.sha256 = sha256
        self.metadata: dict[str, Any] = {}
        self.index: SoundIndex | None = None
        self.router: Router | None = None  # paths go straight without an index to route by

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        device: str | torch.device = "auto",
        num_threads: int | None = None,
        expected_sha256: str | None = None,
    ) -> PatchSpace:
        """Load a verified ``patch-vae`` checkpoint.

        ``num_threads`` bounds torch's intra-op threads (process-wide) so
        decoding cannot starve the rest of the control process.
        """
        if num_threads is not None:
            if num_threads < 1:
                raise ValueError(f"num_threads must be at least 1, got {num_threads}")
            torch.set_num_threads(num_threads)
        dev = resolve_device(device)
        loaded: LoadedCheckpoint = load_checkpoint(path, expected_sha256, device=dev)
        if loaded.name != "patch-vae" or not isinstance(loaded.model, PatchVAE):
            raise CheckpointError(f"{path}: holds model {loaded.name!r}; expected 'patch-vae'")
        meta = loaded.metadata
        codec = PatchCodec()
        if meta.get("codec") != codec.layout():
            raise CheckpointError(
                f"{path}: trained on another patch layout than params.py now defines; retrain with "
                "`timbrespace train patch-vae`"
            )
        try:
            low, high = meta["latent_low"], meta["latent_high"]
        except KeyError as exc:
            raise CheckpointError(f"{path}: metadata lacks {exc.args[0]}; expected latent bounds") from None
        space = cls(loaded.model, low, high, dev, loaded.sha256)
        space.metadata = meta
        if meta.get("sound_index") is not None:
            try:
                space.index = SoundIndex.from_metadata(meta["sound_index"])
                space.router = Router(space.index.points, space.index.qualities, space.low, space.high)
            except ValueError as exc:
                raise CheckpointError(f"{path}: {exc}") from None
        return space

    # ------------------------------------------------------------ latent <-> unit square

    def unit_to_latent(self, xy: npt.ArrayLike) -> FloatArray:
        """Latent points for unit-square points (clipped into the square first)."""
        a = np.clip(_points(xy, "unit-square points"), 0.0, 1.0)
        result: FloatArray = self.low + a * (self.high - self.low)
        return result

    def latent_to_unit(self, z: npt.ArrayLike) -> FloatArray:
        """Unit-square coordinates of latent points, clipped to the square."""
        a = _points(z, "latent points")
        return np.clip((a - self.low) / (self.high - self.low), 0.0, 1.0)

    # ------------------------------------------------------------ decode / encode

    def _outputs(self, z: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
        """The decoder's continuous outputs and stepped logits at latent points ``(N, 2)``."""
        a = _points(z, "latent points")
        with torch.inference_mode():
            cont, logits = self.model.decode(torch.as_tensor(a, dtype=torch.float32, device=self.device))
            return cont.cpu().numpy().astype(np.float64), logits.cpu().numpy().astype(np.float64)

    def decode_latent(self, z: npt.ArrayLike) -> FloatArray:
        """Patches ``(N, 41)`` for latent points ``(N, 2)``."""
        return self.codec.decode(*self._outputs(z))

    def path_plan(self, source: npt.ArrayLike, target: npt.ArrayLike) -> patch_path.PathPlan:
        """The route from latent ``source`` to ``target`` ``(2,)`` and where each stepped parameter switches
        along it."""
        ends = _points(np.stack([np.asarray(source, np.float64).ravel(), np.asarray(target, np.float64).ravel()]),
                       "latent points")
        route = (patch_path.Route.line(ends[0], ends[1]) if self.router is None
                 else self.router.route(ends[0], ends[1]))
        _, logits = self._outputs(route.at(np.linspace(0.0, 1.0, patch_path.GRID)))
        return patch_path.plan(self.codec, route, logits)

    def decode_path(self, plan: patch_path.PathPlan, alphas: npt.ArrayLike) -> FloatArray:
        """Patches ``(N, 41)`` at ``alphas`` of the way along ``plan``'s route: the decoder's continuous
        parameters at the route's point, the plan's stepped levels."""
        return plan.apply(self.decode_latent(plan.blend(alphas)), alphas)

    def decode_unit(self, xy: npt.ArrayLike) -> FloatArray:
        """Patches ``(N, 41)`` for unit-square points ``(N, 2)``; points outside are clipped."""
        return self.decode_latent(self.unit_to_latent(xy))

    def encode_latent(self, values: npt.ArrayLike) -> FloatArray:
        """Latent points ``(N, 2)`` of patches ``(N, 41)``: where the sound index placed them, else the
        posterior mean."""
        v = np.asarray(values, dtype=np.float64)
        if v.ndim == 1:
            v = v[None, :]
        if self.index is not None:
            z, found = self.index.lookup(v)
            if found.all():
                return z
            z[~found] = self.posterior_mean(v[~found])
            return z
        return self.posterior_mean(v)

    def posterior_mean(self, values: npt.ArrayLike) -> FloatArray:
        """The encoder's posterior means ``(N, 2)`` of patches ``(N, 41)``."""
        x = self.codec.encode(np.asarray(values, dtype=np.float64).reshape(-1, params.N_PARAMS))
        with torch.inference_mode():
            mu, _ = self.model.encode(torch.as_tensor(x, dtype=torch.float32, device=self.device))
            return mu.cpu().numpy().astype(np.float64)

    def encode_unit(self, values: npt.ArrayLike) -> FloatArray:
        """Unit-square coordinates ``(N, 2)`` of patches ``(N, 41)`` (posterior mean, clipped)."""
        return self.latent_to_unit(self.encode_latent(values))


def library_coordinates(space: PatchSpace, library: PresetLibrary) -> FloatArray:
    """Unit-square coordinates of every library preset, ``(len(library), 2)`` in index order (for maps)."""
    if len(library) == 0:
        return np.empty((0, 2))
    return space.encode_unit(library.values())


def default_checkpoint() -> Path:
    """The shipped checkpoint, ``models/patch-vae/patch-vae.pt`` in a source checkout."""
    return Path(__file__).resolve().parents[3] / "models" / "patch-vae" / "patch-vae.pt"
