"""A small CNN instrument classifier on log-mel notes: the judge of generated and transferred notes.

It plays the role of the paper's end-to-end CNN (section 4.2): trained on the *real* training notes'
features (the same log-mel the model reads, all 129 frames = 1.5 s), it is asked which instrument a
synthesised note sounds like.  Random level shifts during training keep it from keying on loudness,
which the decoder reproduces less faithfully than spectral shape.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from timbrespace.fsutil import atomic_write_bytes


class InstrumentCNN(nn.Module):
    """Mel bands as channels, two strided 1-D convolutions over time, mean+max pooling, a linear layer."""

    def __init__(self, n_mels: int, n_classes: int, channels: int = 64) -> None:
        super().__init__()
        self.convs = nn.Sequential(
            nn.Conv1d(n_mels, channels, 5, stride=2, padding=2),
            nn.BatchNorm1d(channels),
            nn.ReLU(),
            nn.Conv1d(channels, channels, 5, stride=2, padding=2),
            nn.BatchNorm1d(channels),
            nn.ReLU(),
        )
        self.dropout = nn.Dropout(0.2)
        self.out = nn.Linear(2 * channels, n_classes)

    def forward(self, x: Tensor) -> Tensor:
        h = self.convs(x.transpose(1, 2))
        out: Tensor = self.out(self.dropout(torch.cat([h.mean(-1), h.amax(-1)], dim=1)))
        return out


@dataclass
class Classifier:
    """A trained :class:`InstrumentCNN` with the feature scaling it was trained with."""

    net: InstrumentCNN
    mean: float
    std: float
    n_frames: int

    def _input(self, logmel: npt.ArrayLike) -> Tensor:
        x = torch.as_tensor(np.asarray(logmel, dtype=np.float32))[:, : self.n_frames]
        if x.shape[1] < self.n_frames:  # a short note: pad with the quietest value
            x = F.pad(x, (0, 0, 0, self.n_frames - x.shape[1]), value=float(x.min()))
        return (x - self.mean) / self.std

    def proba(self, logmel: npt.ArrayLike, batch: int = 128) -> npt.NDArray[np.float64]:
        """Posterior over instruments ``(N, K)`` of raw log-mel notes ``(N, frames, mels)``."""
        self.net.eval()
        x = self._input(logmel)
        with torch.inference_mode():
            out = [torch.softmax(self.net(x[s : s + batch]), dim=1) for s in range(0, x.shape[0], batch)]
        return torch.cat(out).double().numpy()

    def predict(self, logmel: npt.ArrayLike) -> npt.NDArray[np.int64]:
        return np.asarray(self.proba(logmel).argmax(1), dtype=np.int64)


def train_classifier(
    logmel: npt.ArrayLike,
    labels: npt.ArrayLike,
    n_classes: int,
    *,
    epochs: int = 30,
    batch_size: int = 64,
    lr: float = 3e-3,
    seed: int = 0,
    gain_nats: float = 1.4,
    jitter_frames: int = 0,
) -> Classifier:
    """Fit on ``(N, frames, mels)`` raw log-mel and labels; seeded (reruns give the same net).

    ``gain_nats``: each training example's log-mel is shifted by a uniform offset in
    +-gain_nats (1.4 nats of power = +-6 dB).  ``jitter_frames``: each example's note starts up to
    this many frames later (silence first, as a window opened before the note-on sees it) or
    earlier (its attack cut) than in the data, so that the judge does not key on where in its
    window a note's sound begins.
    """
    x = torch.as_tensor(np.asarray(logmel, dtype=np.float32))
    y = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    if x.ndim != 3 or x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise ValueError(f"need log-mel (N, frames, mels) and N labels, got {tuple(x.shape)}, {tuple(y.shape)}")
    if not 0 <= jitter_frames < x.shape[1]:
        raise ValueError(f"jitter_frames: expected 0 to {x.shape[1] - 1} (the notes' frames), got {jitter_frames}")
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # weight initialisation and dropout
    mean, std = float(x.mean()), float(x.std())
    clf = Classifier(InstrumentCNN(x.shape[2], n_classes), mean, std, x.shape[1])
    xs = (x - mean) / std
    quietest = float(xs.min())
    opt = torch.optim.AdamW(clf.net.parameters(), lr=lr, weight_decay=1e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=lr, total_steps=epochs * ((x.shape[0] + batch_size - 1) // batch_size)
    )
    clf.net.train()
    for _ in range(epochs):
        order = torch.randperm(x.shape[0], generator=gen)
        for s in range(0, x.shape[0], batch_size):
            j = order[s : s + batch_size]
            if j.numel() < 2:  # batch norm needs two examples
                continue
            xb = xs[j] if jitter_frames == 0 else _jittered(xs[j], jitter_frames, quietest, gen)
            shift = (torch.rand(j.numel(), 1, 1, generator=gen) * 2.0 - 1.0) * (gain_nats / std)
            loss = F.cross_entropy(clf.net(xb + shift), y[j])
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
            sched.step()
    clf.net.eval()
    return clf


def _jittered(x: Tensor, most: int, quiet: float, gen: torch.Generator) -> Tensor:
    """``x`` (B, frames, mels), each example moved by its own whole number of frames in
    [-most, most]: later is silence (``quiet``, the data's quietest value) before the note, earlier
    drops its first frames and holds its last one."""
    b, t = x.shape[0], x.shape[1]
    lag = torch.randint(-most, most + 1, (b, 1), generator=gen)
    src = torch.arange(t).unsqueeze(0) - lag
    out = x[torch.arange(b).unsqueeze(1), src.clamp(0, t - 1)]
    return torch.where((src < 0).unsqueeze(2), torch.tensor(quiet, dtype=x.dtype), out)


def cached_classifier(
    cache: Path | None,
    key: str,
    logmel: npt.ArrayLike,
    labels: npt.ArrayLike,
    n_classes: int,
    **options: Any,
) -> tuple[Classifier, bool]:
    """:func:`train_classifier`, or the net a previous run trained with the same ``key`` (the data's
    sha256 and every option: training is seeded, so the cached net is the one training would give).
    Returns the classifier and whether it came from the cache."""
    blob = json.dumps({"v": 1, "key": key, "n": n_classes, **options}, sort_keys=True)
    path = None if cache is None else cache / f"cnn-{hashlib.sha256(blob.encode()).hexdigest()[:20]}.pt"
    if path is not None and path.is_file():
        state = torch.load(path, map_location="cpu", weights_only=True)
        net = InstrumentCNN(int(state["n_mels"]), n_classes)
        net.load_state_dict(state["net"])
        return Classifier(net.eval(), float(state["mean"]), float(state["std"]), int(state["n_frames"])), True
    clf = train_classifier(logmel, labels, n_classes, **options)
    if path is not None:
        buf = io.BytesIO()
        n_mels = clf.net.convs[0].in_channels
        torch.save({"net": clf.net.state_dict(), "mean": clf.mean, "std": clf.std, "n_frames": clf.n_frames,
                    "n_mels": n_mels}, buf)
        atomic_write_bytes(path, buf.getvalue())
    return clf, False
