"""Harmonic-plus-noise synthesis controls, rendered two ways: as expected log-mel power, and as audio.

A note is described per STFT frame by ``harmonic_amps[H]`` (peak amplitude of the
sinusoid at ``k * f0``, k = 1..H) and ``noise[N]`` (the magnitude of a white-noise
filter in N mel-spaced bands, linearly interpolated in power between band centres).

* :class:`SpectralRenderer` (torch, differentiable) gives the *expected* STFT power
  of that sound through a mel filterbank: each harmonic contributes
  ``(a/2)^2 |W(bin - k f0 / df)|^2`` (W: the DTFT of the analysis window), the noise
  ``|H(bin)|^2 * sum(w^2)``.  Harmonic peaks are summed in power, i.e. their cross
  terms are dropped: exact when peaks do not overlap, the phase-averaged value when
  they do (the lowest piano notes).  Harmonics of a pitch are fixed, so their mel
  responses are tabulated per MIDI pitch once and a frame costs one matrix product.
* :func:`render_audio` (numpy) synthesises the same controls: phase-continuous
  additive oscillators plus white noise filtered frame by frame (weighted overlap-add).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor

FloatArray = npt.NDArray[np.float64]
_REACH = 48  # bins either side of a harmonic's peak that the renderer sums


@dataclass(frozen=True)
class StftSpec:
    """The analysis both the features and the renderer use."""

    sample_rate: int = 22050
    n_fft: int = 2048
    hop: int = 256
    n_mels: int = 256

    @property
    def n_bins(self) -> int:
        return self.n_fft // 2 + 1

    @property
    def bin_hz(self) -> float:
        return self.sample_rate / self.n_fft


def midi_to_hz(pitch: npt.ArrayLike) -> FloatArray:
    """Equal-tempered frequency of MIDI pitch(es), A4 = 440 Hz."""
    return np.asarray(440.0 * 2.0 ** ((np.asarray(pitch, dtype=np.float64) - 69.0) / 12.0))


def _hz_to_mel(f: FloatArray) -> FloatArray:
    # Slaney's scale (librosa's default, htk=False): linear below 1 kHz, logarithmic above.
    f = np.asarray(f, dtype=np.float64)
    lin = f / (200.0 / 3.0)
    log = 15.0 + np.log(np.maximum(f, 1e-9) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(f >= 1000.0, log, lin)


def _mel_to_hz(m: FloatArray) -> FloatArray:
    m = np.asarray(m, dtype=np.float64)
    return np.where(m >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0)), m * (200.0 / 3.0))


def mel_filterbank(spec: StftSpec) -> FloatArray:
    """``(n_mels, n_bins)`` Slaney-normalised triangles from 0 Hz to Nyquist (as librosa.filters.mel)."""
    freqs = np.linspace(0.0, spec.sample_rate / 2.0, spec.n_bins)
    edges = _mel_to_hz(
        np.linspace(_hz_to_mel(np.array(0.0)), _hz_to_mel(np.array(spec.sample_rate / 2.0)), spec.n_mels + 2)
    )
    lower = (freqs[None, :] - edges[:-2, None]) / (edges[1:-1] - edges[:-2])[:, None]
    upper = (edges[2:, None] - freqs[None, :]) / (edges[2:] - edges[1:-1])[:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    # Area normalisation: a band's weight integrates to a constant, so wide bands are not louder.
    return np.asarray(weights * (2.0 / (edges[2:] - edges[:-2]))[:, None])


def noise_basis(spec: StftSpec, n_bands: int) -> FloatArray:
    """``(n_bands, n_bins)`` hat functions on mel-spaced centres; they sum to 1 at every bin."""
    freqs = np.linspace(0.0, spec.sample_rate / 2.0, spec.n_bins)
    centres = _mel_to_hz(np.linspace(0.0, _hz_to_mel(np.array(spec.sample_rate / 2.0)), n_bands))
    eye = np.eye(n_bands)
    return np.stack([np.interp(freqs, centres, eye[i]) for i in range(n_bands)])


def hann(n_fft: int) -> FloatArray:
    """The periodic Hann window (torch.hann_window's and librosa's default)."""
    return np.asarray(0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft))


def hann_kernel_power(nu: FloatArray, n_fft: int) -> FloatArray:
    """``|W(nu)|^2`` of the periodic Hann window, ``nu`` in bins from the peak (closed form)."""

    def dirichlet(x: FloatArray) -> npt.NDArray[np.complex128]:
        num = 1.0 - np.exp(-2j * np.pi * x)
        den = 1.0 - np.exp(-2j * np.pi * x / n_fft)
        near = np.abs(den) < 1e-12  # x a multiple of n_fft: the sum is n_fft
        return np.where(near, n_fft + 0j, num / np.where(near, 1.0, den))

    w = 0.5 * dirichlet(nu) - 0.25 * dirichlet(nu - 1.0) - 0.25 * dirichlet(nu + 1.0)
    return np.asarray(np.abs(w) ** 2)


def frame_mixing(n_frames: int, hop: int, n_fft: int) -> tuple[Tensor, Tensor]:
    """How each analysis frame's power mixes the controls of the frames around it: ``(own, cross)``, each (T, T).

    :func:`render_audio` (and the live engine's crossfades) move a harmonic's amplitude
    linearly from one frame centre to the next, from silence before sample 0, and hold
    it after the last centre.  Analysed with the Hann window centred on frame t, a
    harmonic of per-frame amplitudes ``a`` then has power (relative to a steady sine)
    ``sum_j own[t, j] a_j^2 + 2 sum_j cross[t, j] a_j a_(j+1)``.  Why it matters: an
    attack that rises within the 93 ms window was otherwise rendered up to 1.25 nats
    (frame 0) louder than the expected log-mel the decoder was trained on, and the
    evaluation's CNN recognised 6 points fewer generated notes (86% against 92%).
    Rows sum to 1 (own + 2 cross) wherever the window lies after sample 0.
    """
    half = n_fft // 2
    w2 = hann(n_fft) ** 2
    own = np.zeros((n_frames, n_frames))
    cross = np.zeros((n_frames, n_frames))
    reach = half // hop + 1
    for t in range(n_frames):
        n = t * hop + np.arange(-half, half)
        weight = np.where(n >= 0, w2, 0.0) / w2.sum()
        pos = n / hop
        lo, hi = max(0, t - reach), min(n_frames, t + reach + 1)
        hats = np.stack([np.clip(1.0 - np.abs(pos - j), 0.0, 1.0) for j in range(lo, hi)])
        if hi == n_frames:  # the last frame's amplitude holds (a sustained note)
            hats[-1] = np.where(pos >= n_frames - 1, 1.0, hats[-1])
        own[t, lo:hi] = (hats**2) @ weight
        cross[t, lo : hi - 1] = (hats[:-1] * hats[1:]) @ weight
    return torch.as_tensor(own, dtype=torch.float32), torch.as_tensor(cross, dtype=torch.float32)


def nyquist_mask(f0: Tensor, n_harmonics: int, sample_rate: float) -> Tensor:
    """1 for harmonics ``k * f0`` below Nyquist, 0 above; ``f0`` of any shape, a harmonic axis appended."""
    k = torch.arange(1, n_harmonics + 1, dtype=f0.dtype, device=f0.device)
    return (f0.unsqueeze(-1) * k < sample_rate / 2.0).to(f0.dtype)


class SpectralRenderer:
    """Differentiable expected mel power of harmonic + noise controls (see the module docstring)."""

    def __init__(self, spec: StftSpec, n_harmonics: int, n_noise: int) -> None:
        self.spec, self.n_harmonics, self.n_noise = spec, n_harmonics, n_noise
        self.mel = mel_filterbank(spec)
        self.window = hann(spec.n_fft)
        self.window_power = float(np.sum(self.window**2))  # white noise of unit variance -> E|X|^2
        noise_mel = (noise_basis(spec, n_noise) * self.window_power) @ self.mel.T
        self.noise_mel = torch.as_tensor(noise_mel, dtype=torch.float32)  # (N, n_mels)
        self._tables: dict[float, Tensor] = {}

    def harmonic_table(self, pitch: float) -> Tensor:
        """``(H, n_mels)``: mel power of each unit-amplitude harmonic of MIDI ``pitch`` (cached)."""
        key = float(pitch)
        if key not in self._tables:
            f = midi_to_hz(key) * np.arange(1, self.n_harmonics + 1)
            # Only bins within +-_REACH of each peak: beyond, Hann sidelobes are > 100 dB down.
            centre = np.rint(f / self.spec.bin_hz).astype(np.int64)
            bins = np.clip(centre[:, None] + np.arange(-_REACH, _REACH + 1), 0, self.spec.n_bins - 1)
            power = 0.25 * hann_kernel_power(bins - f[:, None] / self.spec.bin_hz, self.spec.n_fft)
            power[np.diff(bins, axis=1, prepend=-1) == 0] = 0.0  # clipped duplicates count once
            power[f >= self.spec.sample_rate / 2.0] = 0.0
            mel = torch.as_tensor(self.mel.T)[torch.as_tensor(bins)]  # (H, bins, mels), torch: no BLAS threads
            self._tables[key] = torch.einsum("hb,hbm->hm", torch.as_tensor(power), mel).float()
        return self._tables[key]

    def tables(self, pitches: list[float]) -> Tensor:
        """``(P, H, n_mels)`` stacked :meth:`harmonic_table` of several pitches."""
        return torch.stack([self.harmonic_table(p) for p in pitches])

    def mel_power(self, harmonic_amps: Tensor, noise: Tensor, tables: Tensor) -> Tensor:
        """Expected mel power ``(B, T, n_mels)`` from amps ``(B, T, H)``, noise ``(B, T, N)``, tables ``(B, H, M)``."""
        return self.mel_power_sq(harmonic_amps.pow(2), noise.pow(2), tables)

    def mel_power_sq(self, harmonic_sq: Tensor, noise_sq: Tensor, tables: Tensor) -> Tensor:
        """:meth:`mel_power` of squared amplitudes (or of their frame-mixed values, see :func:`mix_frames`)."""
        return torch.bmm(harmonic_sq, tables) + noise_sq @ self.noise_mel.to(noise_sq.device)


def mix_frames(values: Tensor, decoded: Tensor, scored: Tensor, own: Tensor, cross: Tensor) -> Tensor:
    """Squared amplitudes as the analysis of frames ``scored`` hears them (see :func:`frame_mixing`).

    ``values`` (B, D, C) are per-frame amplitudes at the sorted frame indices ``decoded`` (D,),
    which must hold every frame the scored frames' windows reach; returns (B, S, C).
    """
    rows_own, rows_cross = own[scored][:, decoded], cross[scored][:, decoded[:-1]]
    adjacent = (decoded[1:] == decoded[:-1] + 1).to(values.dtype)  # a_j a_(j+1) only where both were decoded
    mixed = torch.einsum("sd,bdc->bsc", rows_own, values.pow(2))
    return mixed + 2.0 * torch.einsum("sd,bdc->bsc", rows_cross * adjacent, values[:, :-1] * values[:, 1:])


def render_audio(
    controls_per_frame: tuple[npt.ArrayLike, npt.ArrayLike],
    f0: float | npt.ArrayLike,
    sample_rate: int = 22050,
    hop: int = 256,
    *,
    n_fft: int = 2048,
    seed: int = 0,
) -> FloatArray:
    """Audio of per-frame ``(harmonic_amps[T, H], noise[T, N])``; frame t is centred on sample ``t * hop``.

    Harmonic amplitudes are interpolated linearly between frame centres and
    the phase of each harmonic is the running sum of its frequency, so a held
    note has no discontinuities (``f0`` may be a scalar or one value per frame).
    Harmonics at or above Nyquist are silent.  Noise: seeded white noise of
    unit variance shaped frame by frame by the band magnitudes (windowed FFT
    filtering with weighted overlap-add, the same Hann window and hop as the
    analysis).  Returns ``T * hop`` samples.
    """
    amps = np.atleast_2d(np.asarray(controls_per_frame[0], dtype=np.float64))
    noise = np.atleast_2d(np.asarray(controls_per_frame[1], dtype=np.float64))
    n_frames, n_harm = amps.shape
    length = n_frames * hop
    centres = np.arange(n_frames) * hop
    n = np.arange(length)
    f0_frames = np.broadcast_to(np.asarray(f0, dtype=np.float64), (n_frames,))
    f0_samples = np.interp(n, centres, f0_frames)
    phase = 2.0 * np.pi * np.cumsum(f0_samples) / sample_rate
    phase -= phase[0]  # every harmonic starts at phase 0 on sample 0
    out = np.zeros(length)
    for k in range(1, n_harm + 1):
        a = np.interp(n, centres, amps[:, k - 1]) * (k * f0_samples < sample_rate / 2.0)
        if np.any(a):
            out += a * np.sin(k * phase)
    if noise.size and np.any(noise):
        out += _filtered_noise(noise, length, sample_rate, hop, n_fft, seed)
    return out


def _filtered_noise(noise: FloatArray, length: int, sample_rate: int, hop: int, n_fft: int, seed: int) -> FloatArray:
    spec = StftSpec(sample_rate, n_fft, hop)
    basis = noise_basis(spec, noise.shape[1])  # power interpolation, as the renderer assumes
    gain = np.sqrt(np.maximum(noise**2 @ basis, 0.0))  # (T, bins) filter magnitude per frame
    window = hann(n_fft)
    half = n_fft // 2
    white = np.random.default_rng(seed).standard_normal(length + n_fft)
    out = np.zeros(length + n_fft)
    norm = np.zeros(length + n_fft)
    for t in range(gain.shape[0]):
        s = t * hop  # frame t spans padded samples [s, s + n_fft), centred on output sample t * hop
        frame = np.fft.irfft(np.fft.rfft(white[s : s + n_fft] * window) * gain[t], n_fft)
        out[s : s + n_fft] += frame * window
        norm[s : s + n_fft] += window**2
    return np.asarray(out[half : half + length] / np.maximum(norm[half : half + length], 1e-8))
