"""The portaudio backend through PortAudio's ALSA host API, on devices alsa-lib's own plugins make.

No sound card here: an ALSA config of the test's own (``ALSA_CONFIG_PATH``, so the machine's
config is never read) defines one PCM, ``default`` (PortAudio's default input and output), an
``asym`` of two chains, each a ``plug`` to 48 kHz stereo float over a ``file`` over a ``null`` PCM:
the capture's ``file`` reads the ``infile`` the test wrote (a sine), the playback's writes to a
named pipe the test reads.

alsa-lib's ``null`` PCM has no clock (PortAudio's blocks arrive as fast as the CPU runs them), so
the pipe is the clock: the test reads it one period at a time by its own clock (the sound card's
part), and the server's blocks wait on it. ``LIBASOUND_THREAD_SAFE=0`` because PortAudio stops an
ALSA stream by cancelling its thread, which is then blocked in the pipe's write inside a PCM lock
that nothing releases (closing the stream hangs); PortAudio calls alsa-lib from one thread at a
time, so the lock guards nothing it needs. (The late-block count means nothing here: the pipe
lets its writer on a page, two blocks, at a time.)

The server (``--audio portaudio --input-device``) must report PortAudio, track the sine's pitch
(within 25 cents) and level (within 1 dB: the file is read without loss), and play a voice at that
pitch (the output's spectral peak, within 25 cents) and level (within 1 dB), finite and under full scale.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import start_server

pytestmark = pytest.mark.numeric

SR = 48000
BLOCK = 256
F0 = 440.0
AMPLITUDE = 0.3  # RMS 0.212: -13.5 dBFS
INPUT_S = 120  # longer than the server can take to start and the test to run (both read at real time)
FRAME = 8  # bytes: two float32 channels

# The chains are written inline: with each a named PCM (pcm.ts_in and so on) under the asym,
# PortAudio read and wrote garbage (samples near 1e37) both ways; the cause was not found.
ASOUND = """
pcm.!default {{
    type asym
    capture.pcm {{
        type plug
        slave {{
            pcm {{ type file slave.pcm {{ type null }} file "/dev/null" infile "{infile}" format "raw" }}
            format FLOAT_LE
            rate {sr}
            channels 2
        }}
    }}
    playback.pcm {{
        type plug
        slave {{
            pcm {{ type file slave.pcm {{ type null }} file "{outfile}" format "raw" }}
            format FLOAT_LE
            rate {sr}
            channels 2
        }}
    }}
}}
"""

LIST_DEVICES = """
import json, os
os.environ["PYO_GUI_WX"] = "0"
import pyo
ins, outs = pyo.pa_get_input_devices(), pyo.pa_get_output_devices()
print(json.dumps({"in": dict(zip(ins[1], ins[0])), "out": dict(zip(outs[1], outs[0])),
                  "default_in": pyo.pa_get_default_input(), "default_out": pyo.pa_get_default_output()}))
"""


class Sink:
    """The sound card's clock: reads the playback pipe one period at a time, keeps what it is told to."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.recording = False
        self.kept: list[bytes] = []
        self.pipe_size = 0  # bytes the pipe holds: written before they are read
        self.lock = threading.Lock()
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        period = BLOCK / SR
        while not self.stopping:
            # Blocks until the server opens its end; an audio process restarted reopens it.
            with open(self.path, "rb", buffering=0) as pipe:
                self.pipe_size = fcntl.fcntl(pipe, fcntl.F_GETPIPE_SZ)
                start, n = time.monotonic(), 0
                while True:
                    n += 1
                    wait = start + n * period - time.monotonic()
                    if wait > 0:
                        time.sleep(wait)
                    data = pipe.read(BLOCK * FRAME)
                    if not data:
                        break
                    with self.lock:
                        if self.recording:
                            self.kept.append(data)

    def frames_kept(self) -> int:
        with self.lock:
            return sum(len(d) for d in self.kept) // FRAME

    def __enter__(self) -> Sink:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping = True
        for _ in range(100):
            # Waiting for a writer (the server gone or never there): be that writer for a moment.
            with contextlib.suppress(OSError):
                os.close(os.open(self.path, os.O_WRONLY | os.O_NONBLOCK))
            self.thread.join(0.1)
            if not self.thread.is_alive():
                break


@pytest.fixture()
def alsa_devices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The ALSA config and its files under tmp_path, in the environment the server inherits;
    skips when PortAudio (pyo's) does not list its device."""
    t = np.arange(SR * INPUT_S) / SR
    x = (AMPLITUDE * np.sin(2 * np.pi * F0 * t)).astype("<f4")
    infile = tmp_path / "in.raw"
    np.stack([x, x], axis=1).tofile(infile)
    outfile = tmp_path / "out.pipe"
    os.mkfifo(outfile)
    conf = tmp_path / "asound.conf"
    conf.write_text(ASOUND.format(infile=infile, outfile=outfile, sr=SR))
    monkeypatch.setenv("ALSA_CONFIG_PATH", str(conf))
    monkeypatch.setenv("LIBASOUND_THREAD_SAFE", "0")
    listed = subprocess.run([sys.executable, "-c", LIST_DEVICES], capture_output=True, text=True, timeout=60)
    found = json.loads(listed.stdout.splitlines()[-1]) if listed.returncode == 0 and listed.stdout.strip() else {}
    if "default" not in found.get("in", {}).values() or "default" not in found.get("out", {}).values():
        pytest.skip(f"PortAudio lists no device from the test's ALSA config: {listed.stdout}{listed.stderr}")
    # Not a skip: the server opens PortAudio's default devices, and with this config that is the one.
    assert found["in"].get(str(found["default_in"])) == "default", found
    assert found["out"].get(str(found["default_out"])) == "default", found
    return outfile


def test_portaudio_plays_and_tracks_its_input_on_alsa_plugin_devices(alsa_devices: Path, tmp_path: Path) -> None:
    with Sink(alsa_devices) as sink:
        s = start_server(tmp_path, "--input-device", audio={"backend": "portaudio", "sample_rate": SR,
                                                            "block_size": BLOCK})
        try:
            ready = next(line for line in s.lines if "ready:" in line)
            assert "(audio portaudio 48000 Hz/" in ready, "\n".join(s.lines)
            c = s.client()
            assert c.status()["audio"] == "portaudio"
            c.send("/input/target", "flute")
            c.send("/input", 1)
            level = 20 * np.log10(AMPLITUDE / np.sqrt(2))
            st = c.status_until(lambda st: abs(1200 * np.log2(max(st["input_f0"], 1.0) / F0)) < 25.0
                                and abs(st["input_level_db"] - level) < 1.0, timeout=10.0)
            assert st["audio"] == "portaudio", st
            # The voice follows the pitch only once tracked; what the pipe holds now is older.
            with sink.lock:
                skip = sink.pipe_size // FRAME
                sink.recording = True
            c.status_until(lambda st: sink.frames_kept() > skip + SR, timeout=10.0)  # a second heard
            sink.recording = False
            assert c.status()["audio"] == "portaudio"  # never fell back to null meanwhile
            c.close()
        finally:
            code = s.stop()
        assert code == 0, "\n".join(s.lines[-30:])
        # PortAudio closed its stream: the audio process ended by itself, not terminated.
        assert not any("audio process did not stop" in line for line in s.lines), "\n".join(s.lines[-30:])
    with sink.lock:
        raw = b"".join(sink.kept)
    y = np.frombuffer(raw[: len(raw) // FRAME * FRAME], dtype="<f4").reshape(-1, 2)[skip:].astype(np.float64)
    assert np.isfinite(y).all()
    assert np.abs(y).max() < 1.0  # the master's limiter holds it under full scale: no clipping
    mono = y[:, 0]
    # No dry input in the mix (its default): this is the voice, at the input's RMS level.
    assert abs(20 * np.log10(np.sqrt(np.mean(mono**2))) - level) < 1.0
    n = len(mono)
    spec = np.abs(np.fft.rfft(mono * np.hanning(n)))
    f = np.fft.rfftfreq(n, 1.0 / SR)
    band = (f > F0 * 0.9) & (f < F0 * 1.1)
    assert spec[band].max() > 0.1 * spec.max()  # the voice sounds at the input's pitch (a flute's strong fundamental)
    k = np.flatnonzero(band)[np.argmax(spec[band])]
    a, b, cc = np.log(spec[k - 1 : k + 2])
    peak = (k + 0.5 * (a - cc) / (a - 2 * b + cc)) * SR / n
    assert abs(1200 * np.log2(peak / F0)) < 25.0, peak

