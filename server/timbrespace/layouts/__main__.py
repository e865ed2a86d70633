"""``python -m timbrespace.layouts [--check]``: regenerate the client layouts, or check for drift."""

from __future__ import annotations

import sys

from timbrespace.layouts import stale, write_all


def main(argv: list[str] | None = None) -> int:
    """Write the layouts; with ``--check`` only report (exit 1) those that differ."""
    args = sys.argv[1:] if argv is None else argv
    if "--check" in args:
        bad = stale()
        for rel in bad:
            print(f"out of date: {rel} (run python -m timbrespace.layouts)")
        return 1 if bad else 0
    for path in write_all():
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
