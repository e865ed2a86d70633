"""Files written so that a crash never leaves half of one behind."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path


class WriteError(OSError):
    """A file could not be written; the previous version of it (if any) is unchanged."""


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: a temp file in the same folder, fsync, rename.

    On any failure (a full disk included) the temp file is removed and the previous file is left
    as it was; the :class:`WriteError` says so, naming the file but not its folder (replies carry it).
    """
    p = Path(path)
    try:
        _write(p, data)
    except OSError as e:
        if isinstance(e, WriteError):
            raise
        raise WriteError(e.errno, f"could not write {p.name}: {e.strerror or e}; "
                                  f"{'the previous file is unchanged' if p.exists() else 'nothing was written'}"
                         ) from e


def _write(p: Path, data: bytes) -> None:
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp makes 0600 files; keep the old file's mode, else an ordinary 0644.
        os.chmod(tmp, p.stat().st_mode & 0o777 if p.exists() else 0o644)
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable
        dfd = os.open(p.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """UTF-8 text, atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def write_generated(argv: Sequence[str] | None, *, prog: str, what: str, default: Path,
                    render: Callable[[], str]) -> int:
    """The command line of a generated document: write ``render()`` atomically to ``default``
    (or the path given); ``what`` says what it is, for --help."""
    import argparse

    parser = argparse.ArgumentParser(prog=prog, description=f"Write {what}.")
    parser.add_argument("path", nargs="?", type=Path, default=default,
                        help=f"where to write it (default: {default.parent.name}/{default.name} in the repository)")
    path = parser.parse_args(argv).path
    atomic_write_text(path, render())
    print(f"wrote {path}")
    return 0
