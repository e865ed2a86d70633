"""Server state persisted across restarts: a JSON file written atomically."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from timbrespace.fsutil import atomic_write_text

log = logging.getLogger(__name__)

STATE_VERSION = 1


@dataclass
class SavedState:
    """Each engine's snapshot, by engine name, and the engine that was heard."""

    engines: dict[str, Any] = field(default_factory=dict)
    active: str | None = None


def load_state(path: Path) -> SavedState:
    """The saved state, or an empty one when there is none or it cannot be read (logged)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return SavedState()
    except (OSError, ValueError) as e:
        log.warning("state file %s ignored: %s", path, e)
        return SavedState()
    if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
        log.warning("state file %s ignored: not a version %d state", path, STATE_VERSION)
        return SavedState()
    engines = data.get("engines")
    active = data.get("active")
    return SavedState(engines if isinstance(engines, dict) else {}, active if isinstance(active, str) else None)


def save_state(path: Path, engines: dict[str, Any], active: str | None = None) -> None:
    """Persist each engine's snapshot and which one is heard."""
    data: dict[str, Any] = {"version": STATE_VERSION, "engines": engines}
    if active is not None:
        data["active"] = active
    atomic_write_text(path, json.dumps(data, indent=1) + "\n")
