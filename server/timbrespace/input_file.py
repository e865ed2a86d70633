"""A WAV file played as the live input (``serve --input FILE.wav``, a render score's ``input:``).

Read once, on the control side, before the audio process starts: mono (channels averaged),
float32, at the server's sample rate (band-limited polyphase resampling when the file's rate
differs). The audio process gets the samples and never opens a file.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import numpy.typing as npt

#: Sample rates a file may have (the server's own range).
MIN_RATE, MAX_RATE = 8000, 192000
#: The longest input taken: it is held in memory in both processes.
MAX_SECONDS = 600.0


class InputFileError(ValueError):
    """An input file that cannot be played; the text names the file and what was expected."""


def load_input(path: str | os.PathLike[str], sample_rate: int) -> npt.NDArray[np.float32]:
    """The file's samples as mono float32 at ``sample_rate``; InputFileError naming what is wrong."""
    import soundfile

    p = Path(path)
    if not p.is_file():
        raise InputFileError(f"input {p}: no such file; expected a WAV file (mono or stereo)")
    try:
        info = soundfile.info(str(p))
    except Exception as e:  # soundfile raises LibsndfileError, RuntimeError, OSError...
        raise InputFileError(f"input {p}: not a readable sound file ({_reason(e)}); expected a WAV file") from None
    rate = int(info.samplerate)
    if not MIN_RATE <= rate <= MAX_RATE:
        raise InputFileError(f"input {p}: sample rate {rate} Hz is outside {MIN_RATE}..{MAX_RATE} Hz; "
                             "expected a recording at e.g. 44100 or 48000 Hz")
    if info.frames <= 0:
        raise InputFileError(f"input {p}: no samples; expected a recording")
    if info.frames / rate > MAX_SECONDS:
        raise InputFileError(f"input {p}: {info.frames / rate:.0f} s long; at most {MAX_SECONDS:g} s is taken "
                             "(it is held in memory)")
    try:
        data, _ = soundfile.read(str(p), dtype="float32", always_2d=True)
    except Exception as e:
        raise InputFileError(f"input {p}: cannot be read ({_reason(e)})") from None
    mono = np.asarray(data.mean(axis=1), dtype=np.float64)
    if not np.all(np.isfinite(mono)):
        raise InputFileError(f"input {p}: holds NaN or infinite samples; expected audio in [-1, 1]")
    return resample(mono, rate, sample_rate)


def resample(x: npt.NDArray[np.float64], rate: int, target: int) -> npt.NDArray[np.float32]:
    """``x`` at ``target`` Hz (scipy's polyphase filter: band-limited, no phase shift)."""
    if rate == target:
        return np.asarray(x, dtype=np.float32)
    from scipy.signal import resample_poly

    ratio = Fraction(target, rate)
    out = resample_poly(x, ratio.numerator, ratio.denominator)
    return np.asarray(np.clip(out, -1.0, 1.0), dtype=np.float32)


def _reason(e: Exception) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0]
