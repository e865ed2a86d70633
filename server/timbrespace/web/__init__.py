"""The web page served at ``/play`` (``static/``: HTML, CSS and plain JS modules, no build step),
and where a browser finds it (:mod:`.url`)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["STATIC"]

#: The page's files, shipped as package data.
STATIC = Path(__file__).resolve().parent / "static"
