"""Shared fixtures: a real server process on loopback, and OSC helpers over real sockets."""

from __future__ import annotations

import contextlib
import itertools
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from pythonosc.osc_bundle import OscBundle
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

os.environ.setdefault("PYO_GUI_WX", "0")
#: numba's on-disk cache (librosa's onset and peak-picking gufuncs) is not safe when two processes
#: compile the same gufunc at once: their cache files can disagree and every later call segfaults
#: (numba issue 10128; it took down an xdist worker in test_patch_eval on a fresh clone). Each test
#: process, and the servers and tools it starts, gets a cache of its own for the run.
_NUMBA_CACHE = tempfile.mkdtemp(prefix="timbrespace-numba-")
os.environ["NUMBA_CACHE_DIR"] = _NUMBA_CACHE

#: torch's and numpy's threads for the whole run, in this process and in every server the tests
#: start. The numeric claims must hold whatever reductions and kernels the count picks, so
#: ``make test-threads`` reruns the numeric tests at 2 (see tests/README.md).
THREADS = int(os.environ.get("TIMBRESPACE_TEST_THREADS", "1"))
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = str(THREADS)  # servers and tools the tests start


def pytest_configure(config: pytest.Config) -> None:
    """Pin torch's and numpy's thread counts to THREADS for the run.

    Code under test asks torch for its configured count (``inference.threads``, usually 1); the
    pin overrides every such request, so a run at 2 threads really computes with 2.
    """
    import torch
    from threadpoolctl import threadpool_limits

    set_threads = torch.set_num_threads
    set_threads(THREADS)
    torch.set_num_threads = lambda n: set_threads(THREADS)  # type: ignore[assignment]
    config._timbrespace_blas = threadpool_limits(THREADS)  # type: ignore[attr-defined]


#: Modules that share something beyond their own processes run on one xdist worker together:
#: zeroconf (a browser sees every server advertised on the host) and the default JACK server, which
#: test_cli's bench starts and stops for scsynth. The JACK tests name servers of their own
#: (``jack_name``): a default one still exiting after the bench was once taken for theirs.
SHARED_GROUPS = {"test_discovery": "host", "test_server_zeroconf": "host", "test_cli": "host", "test_jack": "host",
                 "test_live_input_jack": "host"}


#: Every server a test started: one a test forgot to stop is killed (with its audio process) when
#: the run ends, so a leak costs that test's CPU, not every later run's.
_STARTED: list[subprocess.Popen[str]] = []


def pytest_unconfigure(config: pytest.Config) -> None:
    for proc in _STARTED:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    shutil.rmtree(_NUMBA_CACHE, ignore_errors=True)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``make test`` runs two xdist workers (``--dist loadgroup``): a module's tests stay on one worker,
    where its module-scoped fixtures (a server, a trained model) are made once."""
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            module = item.nodeid.split("::")[0].rsplit("/", 1)[-1].removesuffix(".py")
            item.add_marker(pytest.mark.xdist_group(SHARED_GROUPS.get(module, module)))


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """The run's thread count and test order, also under -q: what it takes to replay a failure."""
    order = "declared order"
    seed = getattr(config.option, "randomly_seed", None)
    if config.pluginmanager.hasplugin("randomly") and isinstance(seed, int):
        order = f"random order, replay with ARGS='-p randomly --randomly-seed={seed}'"
    terminalreporter.write_line(f"timbrespace: torch and numpy at {THREADS} thread(s); {order}")

READY = re.compile(r"ready: udp://(?P<host>[^:]+):(?P<port>\d+) tcp://")


def osc(address: str, *args: Any) -> bytes:
    """Build an OSC message with python-osc."""
    b = OscMessageBuilder(address)
    for a in args:
        b.add_arg(a)
    return b.build().dgram


@dataclass
class ServerProc:
    """A running ``timbrespace serve`` and what it needs."""

    proc: subprocess.Popen[str]
    host: str
    port: int
    tmp: Path
    config: Path
    lines: list[str]

    def client(self, timeout: float = 5.0) -> OscClient:
        return OscClient(self.host, self.port, timeout)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


class OscClient:
    """A UDP socket that sends OSC and collects replies."""

    def __init__(self, host: str, port: int, timeout: float = 5.0, bind: str = "127.0.0.1") -> None:
        self.addr = (host, port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((bind, 0))
        self.timeout = timeout
        self._unbundled: deque[OscMessage] = deque()  # the rest of a bundle received (feedback)

    def send(self, address: str, *args: Any) -> None:
        self.sock.sendto(osc(address, *args), self.addr)

    def send_raw(self, data: bytes) -> None:
        self.sock.sendto(data, self.addr)

    def recv(self, timeout: float | None = None) -> OscMessage:
        """The next message; a bundle's messages one by one, in order."""
        if self._unbundled:
            return self._unbundled.popleft()
        self.sock.settimeout(self.timeout if timeout is None else timeout)
        return self._message(self.sock.recv(65536))

    def _message(self, data: bytes) -> OscMessage:
        if not OscBundle.dgram_is_bundle(data):
            return OscMessage(data)
        todo = [OscBundle(data)]
        while todo:
            for el in todo.pop(0):
                if isinstance(el, OscBundle):
                    todo.append(el)
                else:
                    self._unbundled.append(el)
        return self._unbundled.popleft()

    def expect(self, address: str, timeout: float | None = None) -> OscMessage:
        """The next reply to ``address``, skipping others."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {address} reply")
            msg = self.recv(left)
            if msg.address == address:
                return msg

    def request(self, address: str, *args: Any, reply: str | None = None) -> OscMessage:
        self.send(address, *args)
        return self.expect(reply or f"{address}.reply")

    def status(self) -> dict[str, Any]:
        p = self.request("/status").params
        return dict(zip(p[::2], p[1::2]))

    def status_until(self, cond: Any, timeout: float = 5.0) -> dict[str, Any]:
        """Poll /status until ``cond(status)`` holds: the audio process publishes its counters at
        the end of the block that applied a command, a moment after it answered /sync."""
        deadline = time.monotonic() + timeout
        while not cond(st := self.status()):
            if time.monotonic() > deadline:
                raise AssertionError(f"status never met the condition: {st}")
            time.sleep(0.01)
        return st

    def sync(self, ident: int = 1) -> None:
        self.send("/sync", ident)
        assert self.expect("/synced").params == [ident]

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> OscClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TcpOscClient(OscClient):
    """The same over one TCP connection, SLIP-framed (the server's default framing)."""

    def __init__(self, host: str, port: int, timeout: float = 5.0) -> None:
        self.addr = (host, port)
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.timeout = timeout
        self._buf = b""
        self._unbundled = deque()

    def send(self, address: str, *args: Any) -> None:
        self.send_raw(osc(address, *args))

    def send_raw(self, data: bytes) -> None:
        esc = data.replace(b"\xdb", b"\xdb\xdd").replace(b"\xc0", b"\xdb\xdc")
        self.sock.sendall(b"\xc0" + esc + b"\xc0")

    def recv(self, timeout: float | None = None) -> OscMessage:
        if self._unbundled:
            return self._unbundled.popleft()
        self.sock.settimeout(self.timeout if timeout is None else timeout)
        while True:
            frame, sep, rest = self._buf.lstrip(b"\xc0").partition(b"\xc0")
            if sep:
                self._buf = rest
                return self._message(frame.replace(b"\xdb\xdc", b"\xc0").replace(b"\xdb\xdd", b"\xdb"))
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("the server closed the connection")
            self._buf += data


def write_config(tmp: Path, **sections: dict[str, Any]) -> Path:
    """A config for tests: loopback, any free port, no audio device, files under tmp."""
    data: dict[str, Any] = {
        "network": {"host": "127.0.0.1", "port": 0, "zeroconf": False, "http_port": 0},
        "inference": {"threads": THREADS},
        "audio": {"backend": "null"},
        "patch": {"user_bank": str(tmp / "user.amSynth.bank")},
        "state": {"path": str(tmp / "state.json")},
    }
    for k, v in sections.items():
        if isinstance(v, list):  # a list section (layers) is given whole
            data[k] = v
        else:
            data.setdefault(k, {}).update(v)
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _read_lines(proc: subprocess.Popen[str], lines: list[str], out: queue.Queue[str | None]) -> None:
    # A thread, not select(): the text wrapper buffers, so select() can miss a line already read.
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line.rstrip())
        out.put(line)
    out.put(None)


def start_server(tmp: Path, *extra: str, timeout: float = 90.0, prefix: Sequence[str] = (),
                 **sections: dict[str, Any]) -> ServerProc:
    """Start ``timbrespace serve`` and wait for its ready line; ``prefix`` runs it through a
    command that execs the rest (``ip netns exec NS``), so signals still reach the server."""
    cfg = write_config(tmp, **sections)
    proc = subprocess.Popen(
        [*prefix, sys.executable, "-m", "timbrespace", "serve", "--config", str(cfg), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # so a failed start can be killed with its audio process
    )
    lines: list[str] = []
    q: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_read_lines, args=(proc, lines, q), daemon=True).start()
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = q.get(timeout=left)
        except queue.Empty:
            break
        if line is None:
            break
        m = READY.search(line)
        if m:
            _STARTED.append(proc)
            return ServerProc(proc, m["host"], int(m["port"]), tmp, cfg, lines)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)
    raise RuntimeError(f"server did not start within {timeout:.0f} s:\n" + "\n".join(lines))


def read_wav(path: Path) -> Any:
    """A WAV file (16-, 24- or 32-bit PCM) as float64 in [-1, 1], shape (frames, channels)."""
    import wave

    import numpy as np

    with wave.open(str(path)) as w:
        width, channels = w.getsampwidth(), w.getnchannels()
        raw = w.readframes(w.getnframes())
    if width == 3:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        ints = (b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)) << 8 >> 8
        audio = ints / float(1 << 23)
    else:
        audio = np.frombuffer(raw, {2: "<i2", 4: "<i4"}[width]) / float(1 << (8 * width - 1))
    return audio.reshape(-1, channels)


def spectrum_db(audio: Any, frame: int = 4096) -> Any:
    """Long-term magnitude spectrum of the mono mix in dB: mean over Hann frames, half overlapped."""
    import numpy as np

    mono = np.asarray(audio, np.float64)
    mono = mono.mean(axis=1) if mono.ndim == 2 else mono
    hop = frame // 2
    starts = range(0, max(1, mono.size - frame + 1), hop)
    window = np.hanning(frame)
    mags = [np.abs(np.fft.rfft(np.resize(mono[s : s + frame], frame) * window)) for s in starts]
    return 20 * np.log10(np.mean(mags, axis=0) + 1e-12)


def assert_same_spectrum(a: Any, b: Any, within_db: float, floor_db: float = 60.0) -> None:
    """``a`` and ``b`` sound the same: spectra equal within ``within_db`` wherever either is less
    than ``floor_db`` below the louder's peak (below that, rounding noise has no pitch or timbre).
    """
    import numpy as np

    sa, sb = spectrum_db(a), spectrum_db(b)
    top = max(float(sa.max()), float(sb.max()))
    assert top > -60.0, "both signals are silent: nothing to compare"
    heard = np.maximum(sa, sb) > top - floor_db
    worst = float(np.abs(sa - sb)[heard].max())
    assert worst <= within_db, f"spectra differ by {worst:.2f} dB (allowed {within_db} dB)"


#: Two signals (or wavetables, or band gains) that differ by less than this fraction of their peak
#: (-80 dB) sound the same: a hundred times float32 rounding, far below hearing in any mix.
INAUDIBLE = 1e-4


def assert_inaudibly_close(got: Any, want: Any, within: float = INAUDIBLE) -> None:
    """``got`` equals ``want`` up to ``within`` of ``want``'s peak (the claim is about sound)."""
    import numpy as np

    got, want = (np.asarray(x.detach() if hasattr(x, "detach") else x, np.float64) for x in (got, want))
    assert got.shape == want.shape, (got.shape, want.shape)
    peak = float(np.abs(want).max())
    worst = float(np.abs(got - want).max())
    assert worst <= within * peak, f"differs by {worst:.3g}, {worst / peak if peak else np.inf:.3g} of the peak"


def assert_same_patch(got: Any, want: Any, within: float = 1e-4) -> None:
    """Rows of amSynth patches (bank units) are the same patches: every parameter within ``within`` of
    its range (a ten-thousandth of a knob's travel), so a stepped parameter must be on the same step."""
    import numpy as np

    from timbrespace.patch import params

    span = np.array([p.maximum - p.minimum for p in params.PARAMS])
    off = np.abs(np.asarray(got, np.float64) - np.asarray(want, np.float64)) / span
    if off.size and off.max() > within:
        i = np.unravel_index(int(np.argmax(off)), off.shape)
        raise AssertionError(f"{params.PARAMS[i[-1]].name} differs by {off[i]:.3g} of its range at {i}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProc]:
    """One server for a whole test module."""
    s = start_server(tmp_path_factory.mktemp("server"))
    yield s
    s.stop()


def read_mono16(path: Path, sr: int = 22050) -> Any:
    """A 16-bit mono WAV at ``sr`` (the training data's format) as float64."""
    import wave

    import numpy as np

    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, sr)
        return np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float64) / 32767


def note_f0(x: Any, sr: int = 22050) -> float:
    """Mean fundamental over 0.2-1.4 s: the lowest strong spectral peak, then the power-weighted mean
    frequency within a semitone of it (recorded vibrato makes a single FFT peak wander by 40 cents)."""
    import numpy as np

    seg = x[int(0.2 * sr):int(1.4 * sr)]
    n = 1 << 19
    power = np.abs(np.fft.rfft(seg * np.hanning(seg.size), n)) ** 2
    freqs = np.fft.rfftfreq(n, 1 / sr)
    lo, hi = np.searchsorted(freqs, [50, 4000])
    m = power[lo:hi]
    strong = np.nonzero((m[1:-1] > m[:-2]) & (m[1:-1] >= m[2:]) & (m[1:-1] > 0.01 * m.max()))[0]
    coarse = freqs[lo + 1 + strong[0]]
    band = (freqs > coarse * 2 ** (-1 / 12)) & (freqs < coarse * 2 ** (1 / 12))
    return float((freqs[band] * power[band]).sum() / power[band].sum())


def start_jackd() -> subprocess.Popen[bytes]:
    """jackd on its dummy driver (no sound card), at the server's rate and block size, under the
    name ``JACK_DEFAULT_SERVER`` gives (the ``jack_server`` fixture sets a name of the test's own).

    Ready means a client can connect: jackd's socket appears before it accepts clients."""
    from timbrespace.audio.host import jack_running

    name = os.environ.get("JACK_DEFAULT_SERVER", "default")
    # It dies with the test process: a run killed by a timeout must not leave JACK servers behind
    # (libjack serves a handful at once, then refuses: "Too many servers already active").
    proc = subprocess.Popen(["jackd", "-n", name, "--no-realtime", "-d", "dummy", "-r", "48000", "-p", "256"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=_die_with_test)
    deadline = time.monotonic() + 20.0
    while time.monotonic() < deadline and proc.poll() is None:
        if jack_running() and _jack_accepts_clients():
            return proc
        time.sleep(0.1)
    proc.kill()
    proc.wait(10)
    raise AssertionError(f"jackd -n {name} did not start (exit {proc.returncode})")


def _die_with_test() -> None:
    """Linux: SIGTERM this child when the test process that started it dies, even by SIGKILL."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _jack_accepts_clients() -> bool:
    """A JACK client opens and closes on the server ``JACK_DEFAULT_SERVER`` names."""
    probe = ("import jack, sys\n"
             "try:\n    jack.Client('ts-probe', no_start_server=True).close()\n"
             "except jack.JackError:\n    sys.exit(1)\n")
    try:
        done = subprocess.run([sys.executable, "-c", probe], capture_output=True, timeout=10)
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


@pytest.fixture()
def jack_name(monkeypatch: pytest.MonkeyPatch) -> str:
    """A JACK server name of this test's own in ``JACK_DEFAULT_SERVER``: another test's jackd
    (bench's for scsynth, one still exiting) is never taken for the test's, and the servers and
    JACK clients the test starts inherit the name."""
    name = f"ts-test-{os.getpid()}-{next(_JACK_NAMES)}"
    monkeypatch.setenv("JACK_DEFAULT_SERVER", name)
    return name


@pytest.fixture()
def jack_server(jack_name: str) -> Iterator[None]:
    """A JACK server of this test's own (see ``jack_name``), stopped after it."""
    proc = start_jackd()
    try:
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


_JACK_NAMES = itertools.count()


def shipped_timbre_config(tmp: Path) -> Any:
    """The default config with the shipped timbre model (its absence fails the test: the repo ships
    it), a user bank under ``tmp`` and no state file."""
    from timbrespace import config

    c = config.load(None)
    if not c.timbre.model.exists():
        pytest.fail(f"the shipped timbre model is missing: {c.timbre.model}")
    c.patch.user_bank = tmp / "user.bank"
    c.state.persist = False
    return c


@pytest.fixture(scope="module")
def one_bank(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding one amSynth factory bank (BriansBank01), for small training runs that hear;
    skips where the banks or amSynth's DSSI plugin are missing."""
    from timbrespace.fidelity import reference

    factory = Path("/usr/share/amsynth/banks")
    if not factory.is_dir() or not reference.available():
        pytest.skip("amSynth's factory banks and DSSI plugin are needed")
    d = tmp_path_factory.mktemp("bank")
    shutil.copy(factory / "BriansBank01.amSynth.bank", d)
    return d
