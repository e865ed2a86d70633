"""Gaussian-mixture VAE with a pitch space and a timbre space, decoding to harmonic-plus-noise controls.

After Luo, Agres & Herremans (ISMIR 2019): two encoders read a 500 ms log-mel
spectrogram; q(z_p|X) has a supervised GMM prior (one component per MIDI pitch,
sigma e^-2; means fixed on a pitch helix by default, learned as in the paper with
``pitch_prior="learned"``), q(z_t|X) a GMM prior over instruments (K components,
sigma e^0, learnable means, semi-supervised).  The loss is the negative of their eq. (2).

Unlike the paper the decoder does not draw a spectrogram: per frame it emits
DDSP-style synthesiser controls (an overall amplitude times a distribution over
harmonics, zero above Nyquist, plus noise band magnitudes) from (z_t, z_p,
frame, velocity).  The reconstruction term compares the controls' expected
log-mel power (:class:`SpectralRenderer`) with the input, so pitch is exact by
construction (harmonics sit at k f0 of the labelled pitch) and the live engine
can play the same controls with oscillators and filtered noise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from timbrespace.models.registry import register
from timbrespace.models.timbre_features import FeatureSpec, Normaliser
from timbrespace.models.timbre_pitch import HarmonicSalience, pitch_circles, pitch_helix
from timbrespace.models.timbre_render import SpectralRenderer, frame_mixing, midi_to_hz, mix_frames, nyquist_mask


class Encoder(nn.Module):
    """(B, frames, mels) -> posterior mean and log variance: two strided 1-D convolutions over time + a layer."""

    def __init__(self, n_mels: int, n_frames: int, channels: int, hidden: int, latent: int) -> None:
        super().__init__()
        # Mel bands are channels, as in the paper; stride 2 (not the paper's 1) keeps CPU training short.
        self.convs = nn.Sequential(
            nn.Conv1d(n_mels, channels, 3, stride=2, padding=1),
            nn.BatchNorm1d(channels),
            nn.ReLU(),
            nn.Conv1d(channels, channels, 3, stride=2, padding=1),
            nn.BatchNorm1d(channels),
            nn.ReLU(),
        )
        t = n_frames
        for _ in range(2):
            t = (t - 1) // 2 + 1
        self.fc = nn.Sequential(nn.Linear(channels * t, hidden), nn.BatchNorm1d(hidden), nn.ReLU())
        self.mu = nn.Linear(hidden, latent)
        self.logvar = nn.Linear(hidden, latent)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.fc(self.convs(x.transpose(1, 2)).flatten(1))
        return self.mu(h), self.logvar(h).clamp(-12.0, 6.0)


@dataclass(frozen=True)
class Posterior:
    """q(z_t|X) and q(z_p|X) as means and log variances, (B, latent) each."""

    mu_t: Tensor
    logvar_t: Tensor
    mu_p: Tensor
    logvar_p: Tensor


@dataclass(frozen=True)
class ComponentMeans:
    """The mixture means: timbre (K, L) in instrument order, pitch (M, L) in ``pitches`` order."""

    timbre: Tensor
    pitch: Tensor
    pitches: list[int]


@dataclass(frozen=True)
class ElboTerms:
    """Per-note terms of the negative ELBO (each (B,)); ``total`` is their sum."""

    recon: Tensor  # -log p(X|z): summed squared error of normalised log-mel over frames and bands
    kl_pitch: Tensor  # KL(q(z_p|X) || p(z_p|y_p))
    kl_timbre: Tensor  # E_q(y_t|X) KL(q(z_t|X) || p(z_t|y_t)), one-hot q for labelled notes
    kl_y: Tensor  # KL(q(y_t|X) || uniform), zero for labelled notes
    mean_recon: Tensor  # weighted recon of the note decoded from its mixture means (0 unless asked; not the paper's)

    @property
    def total(self) -> Tensor:
        return self.recon + self.kl_pitch + self.kl_timbre + self.kl_y + self.mean_recon


def _gauss_kl(mu: Tensor, logvar: Tensor, mu0: Tensor, logvar0: float) -> Tensor:
    """KL(N(mu, e^logvar) || N(mu0, e^logvar0)) summed over the last axis (broadcasting)."""
    return 0.5 * torch.sum(logvar0 - logvar + (logvar.exp() + (mu - mu0).pow(2)) / math.exp(logvar0) - 1.0, dim=-1)


def smooth_time_basis(n_frames: int, size: int) -> Tensor:
    """``(n_frames, size)`` Gaussian bumps evenly spaced in log(1 + frame / 2), one bump wide.

    The decoder sees time through these, so its controls are smooth functions of time:
    fine steps through the attack (frames 0, 1, 2 are a bump apart), about 25 frames per
    bump late in the sustain.  A free embedding per frame (``time_basis="embedding"``)
    left ~5% frame-to-frame jitter in the harmonic amplitudes; rendered, that amplitude
    modulation at the 86 Hz frame rate filled the valleys between harmonics by 1-3 nats.
    """
    if size < 2:
        raise ValueError("the smooth time basis needs at least 2 functions")
    u = torch.log1p(torch.arange(n_frames, dtype=torch.float64) / 2.0)
    centres = torch.linspace(0.0, float(u[-1]), size, dtype=torch.float64)
    width = float(centres[1] - centres[0])
    return torch.exp(-0.5 * ((u.unsqueeze(1) - centres) / width) ** 2).float()


@register("timbre-gmvae")
class TimbreGMVAE(nn.Module):
    """The model; constructor keyword arguments are its whole config (see :mod:`checkpoint`)."""

    def __init__(
        self,
        pitches: Sequence[int],
        n_instruments: int,
        log_lo: float,
        log_hi: float,
        latent_dim: int = 16,
        channels: int = 128,
        hidden: int = 256,
        dec_hidden: int = 256,
        n_harmonics: int = 60,
        n_noise: int = 48,
        time_dim: int = 16,
        pitch_log_sigma: float = -2.0,
        pitch_prior: str = "helix",
        timbre_log_sigma: float = 0.0,
        pitch_recon_grad: bool = True,
        time_basis: str = "embedding",
        pitch_input: str = "mel",
        sample_rate: int = 22050,
        n_fft: int = 2048,
        hop: int = 256,
        n_mels: int = 256,
        enc_frames: int = 43,
        dec_frames: int = 129,
        floor: float = 1e-5,
    ) -> None:
        super().__init__()
        self.pitches = [int(p) for p in pitches]
        if sorted(set(self.pitches)) != self.pitches or not self.pitches:
            raise ValueError("pitches must be a non-empty increasing list of MIDI pitches")
        self.n_instruments, self.latent_dim = int(n_instruments), int(latent_dim)
        self.n_harmonics, self.n_noise = int(n_harmonics), int(n_noise)
        self.spec = FeatureSpec(sample_rate, n_fft, hop, n_mels, enc_frames, dec_frames, floor)
        self.normalise = Normaliser(float(log_lo), float(log_hi))
        # Fixed prior spreads (the paper's sigma e^-2 and e^0) as log variances.
        self.pitch_logvar, self.timbre_logvar = 2.0 * pitch_log_sigma, 2.0 * timbre_log_sigma
        self.timbre_encoder = Encoder(n_mels, enc_frames, channels, hidden, self.latent_dim)
        # What the pitch encoder reads: the log-mel (the paper) or its harmonic sums (HarmonicSalience).
        self.pitch_input = str(pitch_input)
        self.salience: HarmonicSalience | None = None
        if self.pitch_input == "salience":
            self.salience = HarmonicSalience(self.spec.stft)
        elif self.pitch_input != "mel":
            raise ValueError(f"pitch_input {pitch_input!r}: expected 'mel' or 'salience'")
        pitch_channels = self.salience.size if self.salience is not None else n_mels
        self.pitch_encoder = Encoder(pitch_channels, enc_frames, channels, hidden, self.latent_dim)
        self.timbre_means = nn.Parameter(torch.empty(self.n_instruments, self.latent_dim))
        self.pitch_prior = str(pitch_prior)
        # Whether the reconstruction's gradient reaches the pitch encoder (the paper: yes).  With
        # it, z_p carried timbre the decoder could use (instrument F1 0.31 from z_p) and sat a
        # semitone off its pitch mean (nearest-mean pitch accuracy 75% even on training notes).
        self.pitch_recon_grad = bool(pitch_recon_grad)
        self.pitch_means: Tensor
        if self.pitch_prior == "helix":
            self.register_buffer("pitch_means", pitch_helix(self.pitches, self.latent_dim))
        elif self.pitch_prior == "circles":
            self.register_buffer("pitch_means", pitch_circles(self.pitches, self.latent_dim))
        elif self.pitch_prior == "learned":  # the paper's: Xavier-initialised, trained
            self.pitch_means = nn.Parameter(nn.init.xavier_uniform_(torch.empty(len(self.pitches), self.latent_dim)))
        else:
            raise ValueError(f"pitch_prior {pitch_prior!r}: expected 'helix', 'circles' or 'learned'")
        nn.init.xavier_uniform_(self.timbre_means)
        # Time as the decoder sees it: (dec_frames, time_dim), learned per frame or fixed and smooth.
        self.time_basis = str(time_basis)
        self.time: nn.Embedding | None = None
        self.time_fixed: Tensor
        if self.time_basis == "embedding":
            self.time = nn.Embedding(dec_frames, time_dim)
        elif self.time_basis == "smooth":
            self.register_buffer("time_fixed", smooth_time_basis(dec_frames, time_dim))
        else:
            raise ValueError(f"time_basis {time_basis!r}: expected 'embedding' or 'smooth'")
        own, cross = frame_mixing(dec_frames, hop, n_fft)
        self.mix_own: Tensor
        self.mix_cross: Tensor
        self.register_buffer("mix_own", own, persistent=False)  # derived from the spec: not in checkpoints
        self.register_buffer("mix_cross", cross, persistent=False)
        self.decoder = nn.Sequential(
            nn.Linear(2 * self.latent_dim + time_dim + 1, dec_hidden),
            nn.SiLU(),
            nn.Linear(dec_hidden, dec_hidden),
            nn.SiLU(),
            nn.Linear(dec_hidden, 1 + self.n_harmonics + self.n_noise),
        )
        self.renderer = SpectralRenderer(self.spec.stft, self.n_harmonics, self.n_noise)
        self._tables: Tensor | None = None  # (M, H, mels), built on the first training/eval forward
        self._fast: tuple[tuple[int, ...], Tensor, Tensor, Tensor, Tensor, Tensor] | None = None  # controls()

    @property
    def time_table(self) -> Tensor:
        """``(dec_frames, time_dim)``: row t is what the decoder reads for frame t."""
        return self.time.weight if self.time is not None else self.time_fixed

    # -- encoding -----------------------------------------------------------------------------
    def encode(self, logmel: Tensor) -> Posterior:
        """Posteriors of raw log-mel ``(B, >= enc_frames, n_mels)`` (as :func:`timbre_features.logmel`)."""
        x = self.normalise(logmel[:, : self.spec.enc_frames])
        mu_t, logvar_t = self.timbre_encoder(x)
        mu_p, logvar_p = self.pitch_encoder(self.salience(x) if self.salience is not None else x)
        return Posterior(mu_t, logvar_t, mu_p, logvar_p)

    def component_means(self) -> ComponentMeans:
        """Mixture means (detached): instrument k is row k of ``timbre``, pitch ``pitches[j]`` row j of ``pitch``."""
        return ComponentMeans(self.timbre_means.detach(), self.pitch_means.detach(), list(self.pitches))

    def instrument_posterior(self, z_t: Tensor) -> Tensor:
        """p(y_t|z_t) under a uniform p(y_t): (B, K) responsibilities."""
        d2 = (z_t.unsqueeze(1) - self.timbre_means).pow(2).sum(-1)
        return torch.softmax(-0.5 * d2 / math.exp(self.timbre_logvar), dim=-1)

    def pitch_latent(self, pitch: Tensor) -> Tensor:
        """z_p for MIDI ``pitch`` (B,): its component mean, linear between neighbours, clamped at the ends."""
        grid = torch.tensor(self.pitches, dtype=pitch.dtype, device=pitch.device)
        p = pitch.clamp(grid[0], grid[-1])
        hi = torch.searchsorted(grid, p).clamp(1, max(len(self.pitches) - 1, 1))
        lo = hi - 1 if len(self.pitches) > 1 else hi * 0
        hi = hi if len(self.pitches) > 1 else lo
        span = (grid[hi] - grid[lo]).clamp_min(1e-6)
        w = ((p - grid[lo]) / span).clamp(0.0, 1.0).unsqueeze(-1).to(self.pitch_means.dtype)
        return (1.0 - w) * self.pitch_means[lo] + w * self.pitch_means[hi]

    # -- decoding -----------------------------------------------------------------------------
    def decode(self, z_t: Tensor, z_p: Tensor, frames: Tensor, f0: Tensor, velocity: Tensor) -> tuple[Tensor, Tensor]:
        """Controls ``(B, T, H)`` harmonic amplitudes and ``(B, T, N)`` noise for frame indices ``frames`` (T,)."""
        b, t = z_t.shape[0], frames.shape[0]
        frames = frames.clamp(0, self.spec.dec_frames - 1)  # a held note repeats the last trained frame
        parts = [
            z_t.unsqueeze(1).expand(b, t, -1),
            z_p.unsqueeze(1).expand(b, t, -1),
            self.time_table[frames].unsqueeze(0).expand(b, t, -1),
            (velocity / 127.0).reshape(b, 1, 1).expand(b, t, 1).to(z_t.dtype),
        ]
        out = self.decoder(torch.cat(parts, dim=-1))
        return self._controls(out, f0.reshape(b, 1))

    def _controls(self, out: Tensor, f0: Tensor) -> tuple[Tensor, Tensor]:
        # Log-domain outputs: the loss is on log power, and sounds span ~100 dB.  The offsets start
        # the harmonics at about -35 dBFS and the noise well below them.
        amp = torch.exp((out[..., 0] - 4.0).clamp(max=2.0))
        mask = nyquist_mask(f0.to(out.dtype), self.n_harmonics, self.spec.sample_rate)  # (B, 1, H)
        logits = out[..., 1 : 1 + self.n_harmonics].masked_fill(mask == 0, -1e9)
        harmonics = amp.unsqueeze(-1) * torch.softmax(logits, dim=-1) * mask
        noise = torch.exp((out[..., 1 + self.n_harmonics :] - 9.0).clamp(max=2.0))
        return harmonics, noise

    def controls(
        self,
        z_t: Tensor,
        pitch: Tensor,
        frame_index: int | Tensor,
        velocity: float | Tensor = 100.0,
        z_p: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """One frame of controls for B voices: ``(harmonic_amps[B, H], noise[B, N])``.

        ``pitch`` (B,) is MIDI (fractional allowed): it sets f0 for the Nyquist
        mask and, unless ``z_p`` is given, the decoder reads the means of the
        integer pitches either side and its outputs (log amplitudes and harmonic
        logits) are interpolated between them.  Why not decode the interpolated
        mean: the decoder was trained only near the means, and neighbouring means
        lie far apart (:func:`pitch_circles`), so a bend would pass through codes
        it never saw.  ``frame_index`` (int or (B,)) counts hops from note-on;
        past the trained window it holds the last frame (the sustain).  No
        gradients are kept.
        """
        with torch.inference_mode():
            b = z_t.shape[0]
            _, w_t, w_p, w_v, time_tab, pitch_tab = self._first_layer()
            pitch = torch.as_tensor(pitch, dtype=torch.float32).reshape(b)
            frames = torch.as_tensor(frame_index).reshape(-1).expand(b).clamp(0, self.spec.dec_frames - 1)
            vel = torch.as_tensor(velocity, dtype=z_t.dtype).reshape(-1, 1)
            common = torch.addmm(time_tab[frames] + vel * w_v, z_t, w_t)
            if z_p is None:
                lo = pitch.floor().clamp(0, 126)
                i = lo.long()
                frac = (pitch - lo).clamp(0, 1)
                out = self._hidden_to_out(common + pitch_tab[i])
                bent = torch.nonzero(frac > 0).squeeze(1)  # only these need the pitch above decoded too
                if bent.numel():
                    above = self._hidden_to_out(common[bent] + pitch_tab[i[bent] + 1])
                    out[bent] = torch.lerp(out[bent], above, frac[bent].unsqueeze(1))
            else:
                out = self._hidden_to_out(common + z_p @ w_p)
            f0 = 440.0 * torch.pow(2.0, (pitch - 69.0) / 12.0)
            return self._controls(out, f0)

    def _hidden_to_out(self, h: Tensor) -> Tensor:
        """The decoder after its first layer's affine map (controls() tabulates that map)."""
        out: Tensor = self.decoder[4](F.silu(self.decoder[2](F.silu(h))))
        return out

    def _first_layer(self) -> tuple[tuple[int, ...], Tensor, Tensor, Tensor, Tensor, Tensor]:
        """The decoder's first layer split by input, with its frame and pitch terms tabulated.

        controls() then costs one small matmul for z_t plus two table lookups.  The
        tables follow the weights: they are rebuilt when any of them changed in place
        (optimiser steps and load_state_dict both bump a tensor's version counter).
        """
        first = self.decoder[0]
        assert isinstance(first, nn.Linear)
        params = (first.weight, first.bias, self.time_table, self.pitch_means)
        key = tuple(int(p._version) for p in params) + tuple(p.data_ptr() for p in params)
        if self._fast is None or self._fast[0] != key:
            with torch.no_grad():
                n = self.latent_dim
                w = first.weight.detach().t()  # (in, hidden)
                w_t, w_p = w[:n].contiguous(), w[n : 2 * n].contiguous()
                w_e, w_v = w[2 * n : -1], w[-1:] / 127.0
                time_tab = self.time_table.detach() @ w_e + first.bias.detach()
                midi = torch.arange(128, dtype=torch.float32, device=w.device)
                pitch_tab = self.pitch_latent(midi) @ w_p
                self._fast = (key, w_t, w_p, w_v.contiguous(), time_tab, pitch_tab)
        return self._fast

    # -- the loss -----------------------------------------------------------------------------
    def harmonic_tables(self) -> Tensor:
        """(M, H, mels) mel responses of the harmonics of every pitch component (built once)."""
        if self._tables is None:
            self._tables = self.renderer.tables([float(p) for p in self.pitches])
        return self._tables

    def render_logmel(self, harmonic_amps: Tensor, noise: Tensor, pitch_index: Tensor) -> Tensor:
        """Normalised log-mel ``(B, T, mels)`` of controls; ``pitch_index`` (B,) indexes ``pitches``."""
        return self._logmel_of_squares(harmonic_amps.pow(2), noise.pow(2), pitch_index)

    def _logmel_of_squares(self, harmonic_sq: Tensor, noise_sq: Tensor, pitch_index: Tensor) -> Tensor:
        """:meth:`render_logmel` of squared (or frame-mixed, :func:`mix_frames`) amplitudes."""
        tables = self.harmonic_tables().to(harmonic_sq.device)[pitch_index]
        power = self.renderer.mel_power_sq(harmonic_sq, noise_sq, tables)
        return self.normalise(torch.log(power + self.spec.floor))

    def forward(
        self,
        logmel: Tensor,
        frames: Tensor,
        pitch_index: Tensor,
        velocity: Tensor,
        instrument: Tensor,
        sample: bool = True,
        mean_weight: float = 0.0,
        mean_rows: Tensor | None = None,
    ) -> ElboTerms:
        """Negative-ELBO terms of a batch (eq. (2) of the paper, per note).

        ``logmel`` (B, dec_frames, mels) raw log-mel; the encoders read its first
        ``enc_frames``, the reconstruction is scored on frame indices ``frames``
        (T,) and scaled by dec_frames / T (so a random subset of frames estimates
        the whole 1.5 s).  Each scored frame is the window-weighted mix of the
        decoded frames around it (:func:`frame_mixing`), so contiguous runs of
        ``frames`` decode fewer frames than scattered ones.  ``instrument`` (B,): label, or -1
        for unlabelled notes, which use q(y_t|X) ~ p(y_t|z_t) at the sampled z_t.

        ``mean_weight`` > 0 adds a term outside the paper's ELBO: each labelled note is also
        decoded from its instrument's mean and its pitch's mean (controllable synthesis) and
        scored against itself, with that weight; the gradient reaches the decoder only.
        ``mean_rows`` (B,) bool narrows that to some of the labelled notes (default: all of them).
        """
        post = self.encode(logmel)

        def draw(mu: Tensor, logvar: Tensor) -> Tensor:
            return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if sample else mu

        z_t, z_p = draw(post.mu_t, post.logvar_t), draw(post.mu_p, post.logvar_p)
        if not self.pitch_recon_grad:  # the pitch encoder learns from its supervised prior alone
            z_p = z_p.detach()
        f0 = torch.as_tensor(midi_to_hz(np.asarray(self.pitches)), dtype=z_t.dtype, device=z_t.device)[pitch_index]
        labelled = instrument >= 0
        b = z_t.shape[0]
        rows = torch.arange(b, device=z_t.device)
        if mean_weight > 0:  # the same notes again, from the mixture means: one decoder pass for both
            again = labelled if mean_rows is None else labelled & mean_rows
            rows = torch.cat([rows, rows[again]])
            z_t = torch.cat([z_t, self.timbre_means.detach()[instrument[again]]])
            z_p = torch.cat([z_p, self.pitch_means.detach()[pitch_index[again]]])
        # Decode every frame the scored frames' analysis windows reach, and score what the audio would give.
        decoded = torch.nonzero(self.mix_own[frames].sum(0) > 0).squeeze(1)
        amps, noise = self.decode(z_t, z_p, decoded, f0[rows], velocity[rows])
        pred = self._logmel_of_squares(
            mix_frames(amps, decoded, frames, self.mix_own, self.mix_cross),
            mix_frames(noise, decoded, frames, self.mix_own, self.mix_cross),
            pitch_index[rows],
        )
        target = self.normalise(logmel[:, frames])[rows]
        sq = (pred - target).pow(2).sum(dim=(1, 2)) * (self.spec.dec_frames / frames.shape[0])
        recon = sq[:b]
        mean_recon = torch.zeros_like(recon)
        if mean_weight > 0:
            mean_recon = mean_recon.index_put((rows[b:],), mean_weight * sq[b:])
        kl_pitch = _gauss_kl(post.mu_p, post.logvar_p, self.pitch_means[pitch_index], self.pitch_logvar)
        kl_each = _gauss_kl(post.mu_t.unsqueeze(1), post.logvar_t.unsqueeze(1), self.timbre_means, self.timbre_logvar)
        q_y = self.instrument_posterior(z_t[:b])
        onehot = F.one_hot(instrument.clamp_min(0), self.n_instruments).to(q_y.dtype)
        weights = torch.where(labelled.unsqueeze(1), onehot, q_y)
        kl_timbre = (weights * kl_each).sum(-1)
        kl_y = (q_y * torch.log(q_y.clamp_min(1e-12) * self.n_instruments)).sum(-1) * (~labelled).to(q_y.dtype)
        return ElboTerms(recon, kl_pitch, kl_timbre, kl_y, mean_recon)
