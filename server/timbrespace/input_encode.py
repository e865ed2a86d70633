"""The timbre heard in the live input: its last half second encoded by the timbre model (``/input/alpha``).

``/input/alpha`` moves the input voice's timbre code from the input's own point toward the
target's, as ``/alpha`` does for notes: ``z = z_input + alpha (mu_target - z_input)``. The input's
point is the model's timbre encoding (``mu_t``) of the input's last ``enc_frames`` model frames
(~0.5 s), as ``timbrespace transfer`` encodes a recorded note: resampled to the model's rate,
log-mel, encoder. It runs on the inference worker, batched like every other model call, a few
times a second while the input is voiced, from the samples the audio side shares through the
input's ring (``link.input.InputShared.latest``): a file's and a device's input alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch

from timbrespace.input_file import resample
from timbrespace.models.timbre_features import logmel
from timbrespace.models.timbre_space import TimbreSpace

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class InputSegment:
    """The input's latest samples (at ``sample_rate``) to encode."""

    samples: npt.NDArray[np.float32]
    sample_rate: int


@dataclass(frozen=True)
class InputEncoder:
    """A batched model call (``engines.inference.Kind``): each segment's timbre code ``mu_t``."""

    space: TimbreSpace

    def seconds(self) -> float:
        """How much of the input one encoding reads: the encoder's window."""
        spec = self.space.model.spec
        return float(spec.enc_frames * spec.hop / spec.sample_rate)

    def run(self, inputs: Sequence[InputSegment]) -> list[FloatArray]:
        """One code per segment, one encoder call for all of them."""
        model = self.space.model
        spec = model.spec
        feats = [logmel(resample(np.asarray(s.samples, np.float64), s.sample_rate, spec.sample_rate), spec,
                        n_frames=spec.enc_frames) for s in inputs]
        with torch.inference_mode():
            x = torch.as_tensor(np.stack(feats), device=self.space.device)
            z = model.encode(x).mu_t.double().cpu().numpy()
        return [np.asarray(row) for row in z]

