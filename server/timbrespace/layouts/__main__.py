"""``python -m timbrespace.layouts [--check]``: regenerate the client layouts, or check for drift."""

from __future__ import annotations

import argparse

from timbrespace.layouts import stale, write_all


def main(argv: list[str] | None = None) -> int:
    """Write the layouts; with ``--check`` only report (exit 1) those that differ."""
    parser = argparse.ArgumentParser(
        prog="python -m timbrespace.layouts",
        description="Regenerate the TouchOSC, Max and Pure Data layouts in clients/ from the address declaration.",
    )
    parser.add_argument("--check", action="store_true",
                        help="write nothing; list the committed layouts that differ and exit 1 if any do")
    args = parser.parse_args(argv)
    if args.check:
        bad = stale()
        for rel in bad:
            print(f"out of date: {rel} (run python -m timbrespace.layouts)")
        return 1 if bad else 0
    for path in write_all():
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
