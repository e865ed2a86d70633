"""Server state persisted across restarts: a JSON file written atomically."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from timbrespace.fsutil import atomic_write_text

log = logging.getLogger(__name__)

STATE_VERSION = 1


def load_state(path: Path) -> dict[str, Any]:
    """The saved state, or an empty dict when there is none or it cannot be read (logged)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        log.warning("state file %s ignored: %s", path, e)
        return {}
    if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
        log.warning("state file %s ignored: not a version %d state", path, STATE_VERSION)
        return {}
    engines = data.get("engines")
    return engines if isinstance(engines, dict) else {}


def save_state(path: Path, engines: dict[str, Any]) -> None:
    """Persist each engine's snapshot."""
    atomic_write_text(path, json.dumps({"version": STATE_VERSION, "engines": engines}, indent=1) + "\n")
