"""The timbre space the live engine plays: instruments, their places, and frames of controls.

Wraps a trained ``timbre-gmvae`` checkpoint for the engine: instrument names and lookup
(case, spaces, hyphens and underscores ignored: ``French horn`` = ``french_horn``), the
mixture means (where each instrument sits in timbre space), and batched decoding of one frame
of harmonic amplitudes and noise band gains per sounding note.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch

from timbrespace.models.checkpoint import CheckpointError, load_checkpoint
from timbrespace.models.patch_space import resolve_device
from timbrespace.models.timbre_gmvae import TimbreGMVAE
from timbrespace.models.timbre_map import TimbreMap, map_path
from timbrespace.models.timbre_render import _hz_to_mel, _mel_to_hz

FloatArray = npt.NDArray[np.float64]


def normalise_name(name: str) -> str:
    """An instrument name for matching: lower case, without spaces, hyphens or underscores."""
    return re.sub(r"[\s_\-]+", "", name).lower()


class TimbreSpace:
    """A trained timbre GMVAE and what the engine needs of it; decoding is thread-safe."""

    def __init__(
        self,
        model: TimbreGMVAE,
        instruments: list[str],
        device: torch.device,
        sha256: str = "",
        learned_map: TimbreMap | None = None,
        map_error: str = "",
    ) -> None:
        if len(instruments) != model.n_instruments:
            raise ValueError(f"{len(instruments)} instrument names for {model.n_instruments} mixture components")
        self.model = model.eval()
        self.instruments = list(instruments)
        self._by_name = {normalise_name(n): i for i, n in enumerate(self.instruments)}
        self.device = device
        self.sha256 = sha256
        spec = model.spec
        self.sample_rate = spec.sample_rate
        #: Seconds between frames (the decoder's time step; the engine's control tick).
        self.hop_s = spec.hop / spec.sample_rate
        self.latent_dim = model.latent_dim
        self.n_harmonics, self.n_noise = model.n_harmonics, model.n_noise
        self.means: FloatArray = model.component_means().timbre.cpu().double().numpy()
        #: Standard deviation of each instrument's mixture component (the unit of ``/z``).
        self.sigma = float(np.exp(model.timbre_logvar / 2.0))
        self.pitch_range = (min(model.pitches), max(model.pitches))
        #: The learned 2-D map fitted to this model, if one was found; else why not.
        self.learned_map = learned_map.eval() if learned_map is not None else None
        self.map_error = "" if learned_map is not None else (map_error or "no learned map was given")

    @classmethod
    def load(cls, path: str | os.PathLike[str], device: str | torch.device = "auto",
             num_threads: int | None = None) -> TimbreSpace:
        """Load a verified ``timbre-gmvae`` checkpoint (strict, sha256 checked)."""
        if num_threads is not None:
            torch.set_num_threads(max(1, int(num_threads)))
        dev = resolve_device(device)
        loaded = load_checkpoint(path, device=dev)
        if loaded.name != "timbre-gmvae" or not isinstance(loaded.model, TimbreGMVAE):
            raise CheckpointError(f"{path}: a timbre-gmvae checkpoint was expected, got {loaded.name!r}")
        names = loaded.metadata.get("instruments")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise CheckpointError(f"{path}: the checkpoint does not name its instruments (metadata 'instruments')")
        tmap, why = _load_map(Path(path), loaded.sha256, dev)
        return cls(loaded.model, [str(n) for n in names], dev, loaded.sha256, tmap, why)

    def map_point(self, x: float, y: float) -> FloatArray:
        """The timbre code at (x, y) of the learned map; ValueError says why there is none."""
        if self.learned_map is None:
            raise ValueError(self.map_error)
        return self.learned_map.point(x, y)

    def instrument(self, ref: int | str) -> int:
        """The index of an instrument given by index or name; ValueError says what exists."""
        if isinstance(ref, int) and not isinstance(ref, bool):
            if 0 <= ref < len(self.instruments):
                return ref
            raise ValueError(f"instrument index {ref} is out of range 0..{len(self.instruments) - 1}")
        key = normalise_name(str(ref))
        if key in self._by_name:
            return self._by_name[key]
        raise ValueError(f"unknown instrument {ref!r}; expected an index or one of: {', '.join(self.instruments)}")

    def noise_centres_hz(self) -> tuple[float, ...]:
        """Centres of the decoder's noise bands (mel-spaced from 0 Hz to the model's Nyquist)."""
        nyq = self.sample_rate / 2.0
        mels = np.linspace(0.0, float(_hz_to_mel(np.array(nyq))), self.n_noise)
        return tuple(float(f) for f in _mel_to_hz(mels))

    def frames(
        self, z_t: npt.ArrayLike, pitch: npt.ArrayLike, frame: npt.ArrayLike, velocity: npt.ArrayLike
    ) -> tuple[FloatArray, FloatArray]:
        """One frame per note: ``(harmonic_amps[B, H], noise[B, N])`` (numpy, float64)."""
        z = torch.as_tensor(np.asarray(z_t, dtype=np.float32), device=self.device).reshape(-1, self.latent_dim)
        b = z.shape[0]
        p = torch.as_tensor(np.asarray(pitch, dtype=np.float32), device=self.device).reshape(b)
        f = torch.as_tensor(np.asarray(frame, dtype=np.int64), device=self.device).reshape(b)
        v = torch.as_tensor(np.asarray(velocity, dtype=np.float32), device=self.device).reshape(b)
        amps, noise = self.model.controls(z, p, f, v)
        return amps.double().cpu().numpy(), noise.double().cpu().numpy()

    @staticmethod
    def default_path() -> Path:
        """Where the shipped checkpoint lives."""
        return Path(__file__).resolve().parents[3] / "models" / "timbre-gmvae" / "timbre-gmvae.pt"


def _load_map(model_path: Path, parent_sha256: str, device: torch.device) -> tuple[TimbreMap | None, str]:
    """The learned map beside ``model_path`` if it was fitted to that model (``parent_sha256``), else why not.

    A missing, altered or stale map is not fatal: the corner map still plays.
    """
    path = map_path(model_path)
    if not path.exists():
        return None, f"no learned map at {path}; fit one with `timbrespace train timbre-map --model {model_path}`"
    try:
        loaded = load_checkpoint(path, device=device)
    except CheckpointError as e:
        return None, f"learned map unusable: {e}"
    if not isinstance(loaded.model, TimbreMap):
        return None, f"{path}: a timbre-map checkpoint was expected, got {loaded.name!r}"
    if loaded.metadata.get("parent_sha256") != parent_sha256:
        return None, (f"{path} was fitted to another timbre model (sha256 {loaded.metadata.get('parent_sha256')}, "
                      f"this one is {parent_sha256}); refit it: `timbrespace train timbre-map --model {model_path}`")
    return loaded.model, ""
