"""amSynth itself, headless, in a child process: its DSSI plugin renders there, never beside pyo.

The plugin (``timbrespace.fidelity.plugin``, ctypes) once ran in the same process as
pyo renders; a worker process keeps the two heaps apart for good, so nothing the
plugin leaves in memory can reach a pyo render and a crash in the plugin is an
exception here, not a dead test run.

:class:`Worker` is one long-lived child (``python -m timbrespace.fidelity.reference
--worker``) that dies with the thread that started it (PR_SET_PDEATHSIG) or when its
stdin closes.  Requests and replies are length-prefixed pickles on its stdin/stdout;
the child's own fd 1 goes to stderr, so whatever the plugin prints cannot corrupt
them.  :func:`render` uses one shared worker per process, started on first use.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pickle
import signal
import struct
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from timbrespace.fidelity.plugin import Note, ReferenceUnavailable, check_values

PLUGIN = Path("/usr/lib/dssi/amsynth_dssi.so")
__all__ = ["PLUGIN", "Note", "ReferenceUnavailable", "Worker", "WorkerError", "available", "render"]
_LEN = struct.Struct("<Q")
_PR_SET_PDEATHSIG = 1


class WorkerError(RuntimeError):
    """The amSynth worker failed (it crashed, or raised something unexpected)."""


def available(plugin: Path = PLUGIN) -> bool:
    """Whether amSynth's DSSI plugin is installed."""
    return plugin.is_file()


def _send(f: IO[bytes], obj: object) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    f.write(_LEN.pack(len(data)) + data)
    f.flush()


def _recv(f: IO[bytes]) -> Any:
    """One message, or EOFError when the other side has gone."""
    head = f.read(_LEN.size)
    if len(head) < _LEN.size:
        raise EOFError
    (n,) = _LEN.unpack(head)
    data = f.read(n)
    if len(data) < n:
        raise EOFError
    return pickle.loads(data)  # our own child, on our own pipe


def _how(code: int) -> str:
    return f"signal {-code}" if code < 0 else f"exit code {code}"


def _discard_pipes(proc: subprocess.Popen[bytes]) -> None:
    """Close a finished child's pipes; a write still buffered for a dead reader is dropped."""
    for f in (proc.stdin, proc.stdout):
        with contextlib.suppress(OSError):
            if f is not None:
                f.close()


class Worker:
    """One amSynth worker process; a context manager.  Calls from several threads take turns.

    ``home``: where the plugin writes its config folder (default: this process's ``$HOME``
    at each call).
    """

    def __init__(self, home: Path | None = None) -> None:
        self.home = home
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> Worker:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    @property
    def pid(self) -> int | None:
        """The child's process id while it runs."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def start(self) -> None:
        """Start the child (a no-op while it runs)."""
        if self._proc is not None and self._proc.poll() is None:
            return
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        # The child needs the package importable the way this process found it.
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "timbrespace.fidelity.reference", "--worker", str(os.getpid())],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
        )

    def close(self) -> None:
        """Ask the child to finish (closing its stdin) and wait for it."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(OSError):
            assert proc.stdin is not None
            proc.stdin.close()
        try:
            proc.wait(5.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        _discard_pipes(proc)

    def _call(self, op: str, **kw: Any) -> Any:
        with self._lock:
            proc = self._proc
            if proc is not None and proc.poll() is not None:  # killed between requests: say so once
                self._proc = None
                _discard_pipes(proc)
                raise WorkerError(f"the amSynth worker died ({_how(proc.returncode)}) before {op!r}; "
                                  "the next call starts a new one")
            self.start()
            proc = self._proc
            assert proc is not None and proc.stdin is not None and proc.stdout is not None
            home = str(self.home) if self.home is not None else os.environ.get("HOME")
            if home is None:
                raise ReferenceUnavailable("amSynth's plugin needs $HOME (it writes its config folder there)")
            try:
                _send(proc.stdin, (op, home, kw))
                status, payload = _recv(proc.stdout)
            except (EOFError, OSError):
                code = proc.wait()
                self._proc = None
                _discard_pipes(proc)
                raise WorkerError(f"the amSynth worker died ({_how(code)}) during {op!r}; "
                                  "see its stderr above") from None
        if status == "ok":
            return payload
        kind, message = payload
        exc = {"ReferenceUnavailable": ReferenceUnavailable, "ValueError": ValueError}.get(kind)
        if exc is not None:
            raise exc(message)
        raise WorkerError(f"the amSynth worker raised {kind}: {message}")

    def render(self, values: npt.ArrayLike, notes: Sequence[Note], duration: float, sample_rate: int = 48000,
               block: int = 256, plugin: Path = PLUGIN) -> npt.NDArray[np.float32]:
        """Render ``notes`` on a fresh amSynth set to ``values`` (41, bank units); ``(n, 2)`` float32.

        Notes land on their exact sample (amSynth splits its block at each event).
        ``n`` is ``duration`` rounded down to whole blocks.  A note-off time of None
        holds the note to the end.  ReferenceUnavailable when the plugin is missing,
        ValueError for a bad patch.
        """
        v = check_values(values)  # here too, so a bad patch never costs a round trip
        notes = [(float(a), None if b is None else float(b), int(p), int(vel)) for a, b, p, vel in notes]
        out: npt.NDArray[np.float32] = self._call("render", values=v, notes=notes, duration=float(duration),
                                                  sample_rate=int(sample_rate), block=int(block), plugin=str(plugin))
        return out

    def bench(self, values: npt.ArrayLike, voices: int = 8, seconds: float = 10.0, sample_rate: int = 48000,
              block: int = 256, plugin: Path = PLUGIN) -> dict[str, float]:
        """``voices`` held notes rendered in the worker (single-threaded), timed there.

        Returns ``seconds_rendered``, ``cpu_s`` and ``wall_s`` for the timed part (after
        0.1 s of warm-up, like the pyo voice's bench).
        """
        v = check_values(values)
        warm = 20 * block / sample_rate
        notes = [(0.0, None, 48 + 3 * i, 100) for i in range(voices)]
        result: dict[str, float] = self._call("bench", values=v, notes=notes, duration=warm + seconds,
                                              timed_from=warm, sample_rate=int(sample_rate), block=int(block),
                                              plugin=str(plugin))
        return result


_shared: Worker | None = None
_shared_lock = threading.Lock()


def _worker() -> Worker:
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Worker()
            atexit.register(_shared.close)
        return _shared


def render(
    values: npt.ArrayLike,
    notes: Sequence[Note],
    duration: float,
    sample_rate: int = 48000,
    block: int = 256,
    plugin: Path = PLUGIN,
) -> npt.NDArray[np.float32]:
    """:meth:`Worker.render` on this process's shared worker (started on first use)."""
    return _worker().render(values, notes, duration, sample_rate, block, plugin)


# -- the child -----------------------------------------------------------------------------------


def _die_with_parent(parent: int) -> None:
    """Linux: SIGTERM when the parent dies; exit now if it already has."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # it died before prctl took effect
        sys.exit(0)


def _serve(parent: int) -> None:
    """The worker's loop: one request, one reply, until stdin closes."""
    from timbrespace.fidelity import plugin as amsynth

    _die_with_parent(parent)
    requests = os.fdopen(os.dup(0), "rb")
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # the plugin's own prints go to stderr, never into the reply stream
    sys.stdout = sys.stderr
    while True:
        try:
            op, home, kw = _recv(requests)
        except EOFError:
            return
        os.environ["HOME"] = home  # the caller's, now: the plugin writes its config folder there
        with contextlib.suppress(OSError):  # ... under .local/share, which it cannot create itself
            Path(home, ".local", "share").mkdir(parents=True, exist_ok=True)
        try:
            notes, duration = kw.pop("notes"), kw.pop("duration")
            plugin_path, values = Path(kw.pop("plugin")), kw.pop("values")
            if op == "render":
                out, _, _ = amsynth.render(values, notes, duration, plugin=plugin_path, **kw)
                reply: tuple[str, Any] = ("ok", out)
            elif op == "bench":
                out, cpu, wall = amsynth.render(values, notes, duration, plugin=plugin_path, **kw)
                sr, block = kw["sample_rate"], kw["block"]
                timed = (round(duration * sr) // block - round(kw["timed_from"] * sr) // block) * block / sr
                reply = ("ok", {"seconds_rendered": timed, "cpu_s": cpu, "wall_s": wall,
                                "peak": float(np.abs(out).max())})
            else:
                raise ValueError(f"unknown request {op!r}")
        except Exception as e:  # every failure goes back to the caller, named
            reply = ("error", (type(e).__name__, str(e)))
        _send(replies, reply)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        _serve(int(sys.argv[2]))
    else:
        sys.exit("usage: python -m timbrespace.fidelity.reference --worker PARENT_PID")
