"""Checkpoints: weights + the config that rebuilds the model, in one weights-only file, sha256-verified.

A checkpoint is ``torch.save`` of a plain dict (``format``, ``model`` name,
constructor ``config``, ``metadata``, ``state_dict``): nothing but tensors and
primitive containers, so ``torch.load(weights_only=True)`` reads it without
running pickled code.  Its sha256 goes to a ``<file>.sha256`` sidecar in
``sha256sum`` format; loading verifies the hash before unpickling anything.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from timbrespace.fsutil import atomic_write_bytes
from timbrespace.models import registry

FORMAT = "timbrespace-checkpoint/1"
_KEYS = ("format", "model", "config", "metadata", "state_dict")


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, altered, or does not fit its model."""


@dataclass(frozen=True)
class LoadedCheckpoint:
    """A rebuilt model (in eval mode) with what its checkpoint said about it."""

    model: nn.Module
    name: str
    config: dict[str, Any]
    metadata: dict[str, Any]
    sha256: str
    path: Path


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sidecar_path(path: str | os.PathLike[str]) -> Path:
    """Where the sha256 of checkpoint ``path`` is kept."""
    p = Path(path)
    return p.with_name(p.name + ".sha256")


def save_checkpoint(
    path: str | os.PathLike[str],
    name: str,
    config: dict[str, Any],
    model: nn.Module,
    metadata: dict[str, Any] | None = None,
) -> str:
    """Write model ``name`` and its sha256 sidecar; return the sha256.

    ``registry.create(name, **config)`` must rebuild the model.

    ``config`` and ``metadata`` must hold only str/int/float/bool/None, lists,
    dicts and tensors (what weights-only loading accepts).  Saving through a
    buffer keeps the bytes independent of the file name, so equal weights give
    equal hashes.
    """
    p = Path(path)
    payload = {
        "format": FORMAT,
        "model": name,
        "config": dict(config),
        "metadata": dict(metadata or {}),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    data = buffer.getvalue()
    # Refuse now, not at load time, what weights-only loading would reject.
    try:
        torch.load(io.BytesIO(data), weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"checkpoint for {name!r} is not weights-only loadable: {exc}") from exc
    digest = sha256_bytes(data)
    atomic_write_bytes(p, data)
    atomic_write_bytes(sidecar_path(p), f"{digest}  {p.name}\n".encode())
    return digest


def read_sidecar(path: str | os.PathLike[str]) -> str | None:
    """The sha256 recorded next to checkpoint ``path``, or None if there is no sidecar."""
    side = sidecar_path(path)
    if not side.exists():
        return None
    fields = side.read_text(encoding="utf-8").split()
    if not fields or len(fields[0]) != 64:
        raise CheckpointError(f"{side}: expected '<64 hex digits>  <file name>'")
    return fields[0].lower()


def load_checkpoint(
    path: str | os.PathLike[str],
    expected_sha256: str | None = None,
    device: str | torch.device = "cpu",
) -> LoadedCheckpoint:
    """Verify, load and rebuild a checkpoint; the model comes back on ``device`` in eval mode.

    The hash checked is ``expected_sha256`` if given, else the sidecar's; with
    neither, loading refuses.  Weights must match the rebuilt model exactly
    (``strict=True``).
    """
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"no checkpoint at {p}; expected a file written by `timbrespace train` (see --help)")
    source = "the expected_sha256 argument" if expected_sha256 else f"{sidecar_path(p).name}"
    expected = expected_sha256.lower() if expected_sha256 else read_sidecar(p)
    if expected is None:
        raise CheckpointError(
            f"{p}: no sha256 to verify against; expected {sidecar_path(p)} or expected_sha256"
        )
    data = p.read_bytes()  # hash and unpickle the same bytes
    actual = sha256_bytes(data)
    if actual != expected:
        raise CheckpointError(
            f"{p}: sha256 mismatch: the file hashes to {actual}, but {source} says {expected}; "
            "the file is corrupt or was changed"
        )
    payload = torch.load(io.BytesIO(data), map_location=device, weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{p}: not a {FORMAT} file")
    missing = [k for k in _KEYS if k not in payload]
    if missing:
        raise CheckpointError(f"{p}: checkpoint lacks {', '.join(missing)}")
    name, config, metadata = payload["model"], payload["config"], payload["metadata"]
    model = registry.create(name, **config)
    try:
        model.load_state_dict(payload["state_dict"], strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{p}: weights do not fit model {name!r} built from {config}: {exc}") from exc
    model.to(device).eval()
    return LoadedCheckpoint(model, name, dict(config), dict(metadata), actual, p)
