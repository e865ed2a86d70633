"""Model cards: the markdown that ships next to a checkpoint and says what it is."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from typing import Any

from timbrespace.fsutil import atomic_write_text
from timbrespace.models.timbre_pitch import circle_periods

# Measured with `train()` on the 28 Debian amSynth 1.13.2 factory banks (baselines: 65.7 %, 0.0662).
_ABLATION = [
    ["defaults: hidden 256-128, beta 0.25, squared-error weight 3", "79.1 %", "0.0604", "5.6"],
    ["hidden 32 (the paper's size)", "72.9 %", "0.0606", "3.6"],
    ["beta 1", "71.1 %", "0.0588", "1.7"],
    ["squared-error weight 1", "80.1 %", "0.0618", "5.6"],
    ["paper-like: hidden 32, beta 1, weight 1, no warm-up", "69.9 %", "0.0625", "1.1"],
]


def _pct(x: float) -> str:
    return f"{100.0 * x:.1f} %"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines


def _hearing_options(train: dict[str, Any]) -> str:
    """The command-line options that repeat a run's hearing settings where they differ from the
    defaults (the shipped recipe); empty when they are the defaults."""
    from timbrespace.models.train_patch_vae_options import TrainConfig

    out = ""
    if train.get("sound_weight", 0.0) != TrainConfig.sound_weight:
        out += f" --sound-weight {train.get('sound_weight', 0.0):g}"
    if train.get("distance_weight", 0.0) != TrainConfig.distance_weight:
        out += f" --distance-weight {train['distance_weight']:g}"
    if train.get("straight_through", False) != TrainConfig.straight_through:
        out += " --straight-through" if train.get("straight_through", False) else " --no-straight-through"
    if train.get("square_weight", 0.0) != TrainConfig.square_weight:
        out += f" --square-weight {train.get('square_weight', 0.0):g}"
    path = train.get("path_weight", 0.0)
    if path != TrainConfig.path_weight:
        out += f" --path-weight {path:g}"
    if path > 0 and train.get("path_steps", TrainConfig.path_steps) != TrainConfig.path_steps:
        out += f" --path-steps {train['path_steps']}"
    if path > 0 and train.get("path_reach", TrainConfig.path_reach) != TrainConfig.path_reach:
        out += f" --path-reach {train['path_reach']:g}"
    if path > 0 and train.get("path_ends", TrainConfig.path_ends) != TrainConfig.path_ends:
        out += f" --path-ends {train['path_ends']}"
    if train.get("bounds_quantile", 0.0) != TrainConfig.bounds_quantile:
        out += f" --bounds-quantile {train.get('bounds_quantile', 0.0):g}"
    if train.get("ratings") is not None:
        out += f" --ratings {train['ratings']}"
        if train.get("index_grid", TrainConfig.index_grid) != TrainConfig.index_grid:
            out += f" --index-grid {train['index_grid']}"
        # Checkpoints from before the option placed by ear alone (0).
        if train.get("index_anchor", 0.0) != TrainConfig.index_anchor:
            out += f" --index-anchor {train.get('index_anchor', 0.0):g}"
        if train.get("lattice_ratings") is not None:
            out += f" --lattice-ratings {train['lattice_ratings']}"
    return out


def _index_lines(metadata: dict[str, Any]) -> list[str]:
    """The card's lines on where presets are placed (by ear, or by the encoder)."""
    index = metadata.get("sound_index")
    if index is None:
        return ["- presets are placed at the encoder's posterior mean"]
    r = index["report"]
    head = r["rating_head"]
    r2 = ", ".join(f"{q} {v:.2f}" for q, v in head["cv_r2"].items())
    # Checkpoints from before the kernel head reported a linear ridge head without these keys.
    kernel = "gamma" in head
    how = (f"a kernel ridge head (Gaussian kernel, width {head['gamma']:.4g}, ridge {head['alpha']:g}, chosen by "
           "cross-validation)" if kernel else "a ridge head")
    heard = ("rating descriptor (the hearing's, with the attack, band fluctuation, onset spectrum and flatness)"
             if kernel else "descriptor")
    lattice = r.get("lattice_rated", 0)
    examples = (f"{head['presets']} rated training presets" if not lattice else
                f"{head['presets'] - lattice} rated training presets and {lattice} rated grid points")
    measured = (f"; {lattice} of the grid's points are rated as the eval rates presets (lattice ratings file sha256 "
                f"`{r['lattice_ratings_sha256'][:12]}`), and there their real qualities stand in for the prediction"
                if lattice else "")
    return [
        f"- presets are placed by ear (the sound index): a {r['grid']}x{r['grid']} grid of the square decoded and "
        f"played by {r['renderer']} (C4, 2 s), each point's seven timbral qualities predicted from its {heard} by "
        f"{how} fitted on {examples} (ratings file sha256 "
        f"`{r['ratings_sha256'][:12]}`; cross-validated R² {r2}){measured}; each of the {r['placed']} library "
        "presets is "
        "played the same way and placed at the grid point whose predicted qualities are nearest its own"
        + (f" (each quality over its spread; plus {r['anchor']:g} x the squared distance, in the unit square, to where "
           "the encoder places it, which settles near ties towards where the preset's settings put it). "
           if r.get("anchor") else ". ") +
        "Patches the library did not hold are placed at the encoder's posterior mean",
    ]


def _hearing_lines(metadata: dict[str, Any]) -> list[str]:
    """The card's lines on what training heard (none when it did not)."""
    from timbrespace.models.patch_sound_training import HOLDS_NOTE

    h, train = metadata.get("hearing"), metadata["training"]
    if h is None:
        return []
    heard_as = ("one-hot categoricals, gradient through the softmax" if train.get("straight_through")
                else "softmaxed categoricals")
    return [
        f"- hearing: {h['renders']} patches (the training presets, one random morph and one copy shrunk "
        f"towards the mean per preset) played on C4 for 2 s by {h['renderer']}, each described by "
        f"{h['descriptors']} numbers (time-averaged log-mel and loudness envelope, dB); a proxy MLP from the "
        f"input columns to the standardised descriptors (held-out error {h['proxy_held_out_mse']:.3f}, "
        "1 = the mean's)",
        f"- plus {train['sound_weight']:g} x the proxy's summed squared descriptor error of the reconstruction "
        f"({heard_as}) against the preset's render, and {train['distance_weight']:g} x the mismatch "
        "of latent and descriptor distances within a batch (each over its batch mean)",
        *([f"- plus {train['square_weight']:g} x the same error, per batch, of as many random points drawn "
           "uniformly over the square the presets encode to at that epoch (the bounds rule below), against the "
           f"nearest training preset that holds a note (amplitude sustain at least {HOLDS_NOTE:g}), plus the "
           "cross-entropy of their keyboard mode against poly (the proxy hears one note, so it cannot hear the "
           "mode): the whole square is trained to play, not only the points where presets lie"]
          if train.get("square_weight", 0.0) > 0 else []),
        *([f"- plus {train['path_weight']:g} x the summed squared second differences of the proxy's hearing at "
           f"{train.get('path_steps', 5)} evenly spaced points of as many random segments "
           + ("from each preset of the batch, where it encodes at that step, towards another preset of the batch"
              if train.get("path_ends", "square") == "presets" else
              "of that square, from a random point towards another")
           + f", a random share of the way up to {train.get('path_reach', 1.0):g}: a "
           "straight line through the map is trained to move through sound at a constant rate (SPINVAE's path "
           "roughness, heard)"]
          if train.get("path_weight", 0.0) > 0 else []),
    ]


def patch_vae_card(
    metadata: dict[str, Any],
    config: dict[str, Any],
    sha256: str,
    checkpoint_name: str,
    curve: Sequence[dict[str, float]],
) -> str:
    """The card of a patch-VAE checkpoint, from the metadata stored in it."""
    data, train, metrics = metadata["data"], metadata["training"], metadata["metrics"]
    val = metrics["validation"]
    dirs = ", ".join(f"`{d}`" for d in data["factory_dirs"])
    out = [
        "# patch-vae: a 2-D map of amSynth patches",
        "",
        "A variational autoencoder over amSynth's 41 parameters with a two-dimensional latent space, after",
        "Peachey, Oore & Malloch, *Creating Latent Representations of Synthesizer Patches using Variational",
        "Autoencoders*. The patch engine decodes points of the unit square into playable patches.",
        "",
        f"- checkpoint: `{checkpoint_name}` (sha256 `{sha256}`, also in `{checkpoint_name}.sha256`)",
        "- load: `PatchSpace.load(path)`; the file loads with `torch.load(weights_only=True)`",
        f"- trained with torch {metadata['torch_version']}",
        "",
        "## Data",
        "",
        f"amSynth's factory banks from {dirs}: {len(data['banks'])} banks, "
        f"{data['presets_read']} presets read, "
        f"{data['presets_unique']} after dropping presets whose 41 values repeat an earlier preset "
        f"({data['presets_read'] - data['presets_unique']} dropped). "
        "Values are as amSynth loads them: missing parameters take their defaults, out-of-range values are "
        "clamped, stepped values quantised.",
        "",
        f"Split (seed {train['seed']}): {data['n_train']} training and {data['n_validation']} validation "
        "presets, at random. Banks hold near-copies (variations of one sound), so validation scores are "
        "somewhat optimistic about unseen sounds.",
        "",
        "Banks: " + ", ".join(data["banks"]) + ".",
        "",
        "## Model",
        "",
        f"- input: {config['n_continuous']} continuous parameters scaled to [0, 1] on amSynth's stored "
        "scale, "
        f"plus one-hot blocks for {len(config['group_sizes'])} stepped parameters "
        f"({sum(config['group_sizes'])} columns; osc2 octave and semitone are classes, not numbers)",
        f"- encoder {' -> '.join(str(h) for h in config['hidden'])} (SiLU) -> mean and log-variance in "
        f"{config['latent_dim']}-D; decoder mirrors it; continuous head sigmoid, categorical heads logits "
        f"({metadata['n_weights']:,} weights in all)",
        f"- loss: {train['continuous_weight']} x summed squared error + summed cross-entropy + "
        f"beta x KL, beta = {train['beta']} (warmed up linearly over {train['warmup_epochs']} epochs)",
        *_hearing_lines(metadata),
        *_index_lines(metadata),
        f"- Adam, lr {train['lr']}, batch {train['batch_size']}, {train['epochs']} epochs, "
        f"{train['threads']} thread(s), deterministic algorithms",
        f"- unit square -> latent: x in [{metadata['latent_low'][0]:.3f}, {metadata['latent_high'][0]:.3f}], "
        f"y in [{metadata['latent_low'][1]:.3f}, {metadata['latent_high'][1]:.3f}] "
        f"({metadata['latent_bounds_rule']})",
        "",
        "## Metrics (validation set, through the posterior mean)",
        "",
    ]
    out += _table(
        ["measure", "model", "baseline", "train set"],
        [
            [
                "categorical accuracy (mean over stepped parameters)",
                _pct(val["categorical_accuracy"]),
                _pct(val["categorical_accuracy_baseline"]) + " (most common level)",
                _pct(metrics["train"]["categorical_accuracy"]),
            ],
            [
                "continuous MSE on the [0, 1] scale",
                f"{val['continuous_mse']:.4f}",
                f"{val['continuous_mse_baseline']:.4f} (training mean)",
                f"{metrics['train']['continuous_mse']:.4f}",
            ],
        ],
    )
    out += ["", "Per stepped parameter (validation):", ""]
    out += _table(
        ["parameter", "accuracy", "most-common-level baseline"],
        [
            [k, _pct(v), _pct(val["categorical_baseline_per_param"][k])]
            for k, v in val["categorical_accuracy_per_param"].items()
        ],
    )
    worst = sorted(val["continuous_mse_per_param"].items(), key=lambda kv: -kv[1])
    out += ["", "Continuous MSE per parameter (validation, worst first):", ""]
    base = val["continuous_baseline_per_param"]
    out += _table(
        ["parameter", "MSE", "training-mean baseline", "explained"],
        [
            [k, f"{v:.4f}", f"{base[k]:.4f}", _pct(1.0 - v / base[k]) if base[k] > 0 else "-"]
            for k, v in worst
        ],
    )
    last = curve[-1]
    out += [
        "",
        f"Final losses (epoch {int(last['epoch'])}): train {last['train_loss']:.3f}, validation "
        f"{last['val_loss']:.3f} (KL {last['val_kl']:.2f} nats). Curve: `loss_curve.csv`, `loss_curve.png`.",
        "",
        "![loss curve](loss_curve.png)",
        "",
        "## Why these settings",
        "",
        "Validation results of the default recipe and one change at a time (seed 0, 150 epochs, measured",
        "when the defaults were chosen):",
        "",
        *_table(["variant", "categorical accuracy", "continuous MSE", "KL (nats)"], _ABLATION),
        "",
        "Lowering beta to 0.25 (with warm-up) lets the 2-D code carry more information; wider layers help",
        "the categoricals; weighting the squared error by 3 trades ~1 point of accuracy for lower MSE.",
        *([] if metadata.get("hearing") is None else [
            "",
            "Hearing trades parameter accuracy for sound: the categorical accuracy and continuous MSE above are",
            "worse than the parameter-only recipe's (79.1 %, 0.0604), by design; the sound of the reconstructions",
            "is closer. Every hearing variant tried, with its figures: docs/patch-map.md, \"Towards a better map\".",
        ]),
        "",
        "## Limits",
        "",
        "- Two latent dimensions cannot hold 41 parameters: reconstructions are lossy and pulled toward",
        "  common settings; the map is for exploring, not for recalling a preset exactly (use the library).",
        "- Trained on parameter values only; nearby points need not sound alike." if metadata.get("hearing") is None
        else "- It hears through a learnt proxy of a 2 s render's spectrum and envelope, not through the timbral "
        "ratings the eval uses; how far the map follows sound is what `timbrespace eval patch-vae` measures.",
        "",
        "## Retrain",
        "",
        "```",
        *(["timbrespace train patch-vae --out models/patch-vae",
           "# same as: python -m timbrespace.models.train_patch_vae --out models/patch-vae"]
          if not _hearing_options(train) else  # `timbrespace train patch-vae` takes the default hearing
          [f"python -m timbrespace.models.train_patch_vae --out models/patch-vae{_hearing_options(train)}"]),
        "```",
        "",
        "Same seed, same machine, same torch: the same weights (sha256 above). Options: `--epochs`, "
        "`--seed`, `--beta`, `--hidden`, `--batch-size`, `--lr`, `--banks DIR...`, `--sound-weight`, "
        "`--distance-weight`, `--renderer`, `--proxy-epochs`, `--straight-through`, `--square-weight`, "
        "`--path-weight`, `--path-steps`, `--path-reach`, `--path-ends`, "
        "`--bounds-quantile`, `--ratings FILE`, `--index-grid`, `--index-anchor`, `--lattice-ratings FILE`, "
        "`--hearing-cache FILE` (keeps the renders).",
        "",
    ]
    return "\n".join(out)


def write_patch_vae_card(
    path: str | os.PathLike[str],
    metadata: dict[str, Any],
    config: dict[str, Any],
    sha256: str,
    checkpoint_name: str,
    curve: Sequence[dict[str, float]],
) -> None:
    """Write :func:`patch_vae_card` to ``path`` (atomically)."""
    atomic_write_text(path, patch_vae_card(metadata, config, sha256, checkpoint_name, curve))


def timbre_gmvae_card(
    metadata: dict[str, Any],
    config: dict[str, Any],
    sha256: str,
    checkpoint_name: str,
    curve: Sequence[dict[str, float]],
) -> str:
    """The card of a timbre-GMVAE checkpoint, from the metadata stored in it."""
    data, train, elbo, lat = metadata["data"], metadata["training"], metadata["elbo"], metadata["latent_metrics"]
    retrain = train.get("command", "--out models/timbre-gmvae")
    pitches = config["pitches"]
    per_inst = ", ".join(f"{k} {v}" for k, v in data["notes_per_instrument"].items())
    # Means placed by the notes as rendered: only says something where the set has augmented copies.
    clean = train.get("means_from", "all") == "clean" and any(x.get("augmented") for x in data.get("sources", []))
    as_rendered = " as rendered (augmented copies left out)" if clean else ""
    out = [
        "# timbre-gmvae: pitch and timbre spaces that decode to harmonic-plus-noise controls",
        "",
        "A Gaussian-mixture VAE after Luo, Agres & Herremans, *Learning Disentangled Representations of Timbre",
        "and Pitch for Musical Instrument Sounds Using Gaussian Mixture Variational Autoencoders* (ISMIR 2019),",
        "with a DDSP-style decoder (Engel et al., ICLR 2020): per frame it emits harmonic amplitudes and noise",
        "band magnitudes, which the timbre engine plays with additive oscillators and filtered noise.",
        "",
        f"- checkpoint: `{checkpoint_name}` (sha256 `{sha256}`, also in `{checkpoint_name}.sha256`)",
        "- load: `load_checkpoint(path).model`; the file loads with `torch.load(weights_only=True)`",
        f"- trained with torch {metadata['torch_version']}, {train['world_size']} process(es), "
        f"{train['threads']} thread(s) each, in {train['seconds'] / 60:.1f} min",
        "",
        "## Data",
        "",
        f"`{data['manifest']}` (sha256 `{data['manifest_sha256']}`): {data['n_train']} training and "
        f"{data['n_validation']} validation notes, the manifest's own split. Instruments (notes): {per_inst}.",
        *_sources(data.get("sources", [])),
        f"Pitches: MIDI {pitches[0]}-{pitches[-1]} ({len(pitches)} pitch components). "
        f"Instrument labels used for {train['labelled_notes']} of {data['n_train']} training notes "
        f"(label fraction {train['label_fraction']}).",
        "",
        "## Model",
        "",
        f"- input: log-mel power of the first {config['enc_frames']} frames (500 ms; {config['n_mels']} Slaney mel "
        f"bands, Hann {config['n_fft']}, hop {config['hop']}, {config['sample_rate']} Hz, log(power + "
        f"{config['floor']:g})), scaled to [-1, 1] by the training set's range [{config['log_lo']:.3f}, "
        f"{config['log_hi']:.3f}]",
        f"- two encoders (pitch, timbre): 2 strided 1-D convolutions over time ({config['channels']} channels, "
        f"mels as channels) + a {config['hidden']}-unit layer, batch norm + ReLU, Gaussian heads in "
        f"{config['latent_dim']}-D"
        + (
            "; the pitch encoder reads harmonic sums of the log-mel (12 harmonics on a half-semitone grid, "
            "each frame's mean removed) instead of the log-mel"
            if config.get("pitch_input", "mel") == "salience"
            else ""
        ),
        f"- priors: pitch GMM with {len(pitches)} components, sigma e^-2, supervised by the MIDI label, means "
        + {
            "helix": "fixed on a pitch helix (chroma circle x height half-circle; the decoder renders exact f0, so "
            "learned pitch means are not held apart by reconstruction and drift together)",
            "circles": "fixed, one unit circle per period of "
            + ", ".join(f"{x:g}" for x in circle_periods(int(config["latent_dim"])))
            + " semitones (every dimension carries pitch; learned means are not held apart by reconstruction and "
            "drift together)",
        }.get(str(config.get("pitch_prior", "learned")), "Xavier-initialised and learned (the paper's)")
        + (
            "; the pitch encoder learns from this supervised prior alone (the reconstruction's gradient stops at "
            "z_p: with it, z_p carried timbre and sat a semitone off its pitch)"
            if not config.get("pitch_recon_grad", True)
            else ""
        )
        + f"; timbre GMM with {config['n_instruments']} components, sigma e^0, Xavier-initialised learnable means"
        + (
            ", set after every epoch to their closed-form optimum (the average posterior mean of their notes"
            + as_rendered + ")"
            if train.get("refit_means", False)
            else ""
        )
        + "; q(y_t|X) ~ p(y_t|z_t) for unlabelled notes (eq. (2) of the paper)",
        f"- decoder: MLP ({config['dec_hidden']} x 2, SiLU) of (z_t, z_p, "
        + ("16 smooth functions of log time" if config.get("time_basis") == "smooth" else "a learned vector per frame")
        + f", velocity) -> per frame "
        f"an amplitude x a softmax over {config['n_harmonics']} harmonics (zero above Nyquist) and "
        f"{config['n_noise']} mel-spaced noise band magnitudes; trained on the first {config['dec_frames']} "
        "frames (1.5 s, note-on to note-off); later frames hold the last one",
        "- reconstruction: summed squared error between the input's normalised log-mel and the controls' expected "
        "log-mel (harmonic peaks at exact k f0 shaped by the Hann kernel, plus the noise bands, through the same "
        "filterbank and scaling; each frame mixes its neighbours' controls as the analysis window hears "
        "amplitudes moving linearly between frames); random runs of frames per step"
        + (
            f"; not the paper's: each labelled note{as_rendered} is also decoded from its instrument and pitch "
            "means and "
            f"scored against itself, weight {train['mean_recon']:g} (decoder only)"
            if train.get("mean_recon", 0.0)
            else ""
        ),
        f"- Adam, lr {train['lr']}, batch {train['batch_size']}, {train['epochs']} epochs"
        + (
            f" of {train['epoch_notes']} training notes each (every note drawn once before any twice)"
            if 0 < train.get("epoch_notes", 0) < data["n_train"]
            else ""
        )
        + f", {train['frames_per_step']} frames per note and step, seed {train['seed']}; "
        f"{metadata['n_weights']:,} weights",
        "",
        "## Validation",
        "",
        "Negative ELBO terms per note (posterior means, all frames, labels known):",
        "",
    ]
    out += _table(
        ["split", "total", "reconstruction", "KL pitch", "KL timbre", "KL y"],
        [
            [name, *(f"{t[k]:.1f}" for k in ("loss", "recon", "kl_pitch", "kl_timbre", "kl_y"))]
            for name, t in elbo.items()
        ],
    )
    out += [
        "",
        "Validation macro-F1 of linear probes (logistic regression on the training notes' posterior means) and "
        "of the mixtures themselves:",
        "",
    ]
    labels = {
        "instrument_from_zt": "instrument from z_t (probe)",
        "pitch_from_zp": "pitch from z_p (probe)",
        "pitch_from_zt": "pitch from z_t (probe; low = disentangled)",
        "instrument_from_zp": "instrument from z_p (probe; low = disentangled)",
        "instrument_from_gmm": "instrument: most responsible timbre component",
        "pitch_from_gmm": "pitch: nearest pitch component mean",
    }
    out += _table(
        ["measure", "F1", "accuracy"],
        [[labels.get(k, k), f"{v['f1']:.3f}", _pct(v["accuracy"])] for k, v in lat.items()],
    )
    last = curve[-1]
    out += [
        "",
        f"Final epoch {int(last['epoch'])}: train {last['train_loss']:.1f} (sampled z, frame subsets), "
        f"validation {last['val_loss']:.1f}. Curve: `loss_curve.csv`, `loss_curve.png`.",
        "",
        "![loss curve](loss_curve.png)",
        *_unseen(metadata.get("unseen", {})),
        "",
        "## Limits",
        "",
        (
            "- Rendered notes of the sources above (and their augmented copies) only; validation notes are "
            "other pitches of the same sources, so the unseen sets are the measure of instruments heard elsewhere."
            if data.get("sources")
            else "- One soundfont's instruments, rendered notes only: the spaces describe these 12 sounds, not "
            "instruments in general; validation notes share pitches and instruments with training notes."
        ),
        "- The renderer sums harmonic peaks in power (no cross terms), exact unless peaks overlap (lowest notes).",
        "- The controls model the first 1.5 s; a longer note repeats the last frame, and release is the "
        "engine's envelope.",
        "",
        "## Retrain",
        "",
        "```",
        f"timbrespace train timbre {retrain}",
        f"# same as: python -m timbrespace.models.train_timbre {retrain}",
        "# several processes: torchrun --nproc_per_node=2 -m timbrespace.models.train_timbre",
        "```",
        "",
        "Same seed, same machine, same torch, one process: the same weights. Options: `--manifest`, `--epochs`, "
        "`--epoch-notes`, `--seed`, `--label-fraction`, `--pitch-prior`, `--[no-]pitch-recon-grad`, "
        "`--[no-]refit-means`, `--means-from`, `--channels`, `--dec-hidden`, `--threads`, `--batch-size`, `--lr`; "
        "`--unseen` measures a set never trained on (the weights do not depend on it).",
        "",
    ]
    return "\n".join(out)


def _sources(sources: Sequence[dict[str, Any]]) -> list[str]:
    """The Data section's lines on a mixed set's sources ([] for a single source)."""
    if not sources:
        return []
    rows = [[s["name"], f"`{s['soundfont']}`" if s["soundfont"] else "(a folder of WAVs)", str(s["train"]),
             str(s["augmented"]), str(s["valid"])] for s in sources]
    return ["", f"Mixed from {len(sources)} sources (`timbrespace data mix`; the split is the first source's own, "
            "per instrument and pitch, so a pitch held out is held out in every source; augmented copies are "
            "rooms and microphones drawn per training note, see docs/training-data.md):", "",
            *_table(["source", "from", "training notes", "augmented copies", "validation notes"], rows), ""]


def _unseen(sets: dict[str, Any]) -> list[str]:
    """The card's section on sets it was never trained on ([] when none was measured)."""
    if not sets:
        return []
    out = ["", "## Unseen sets", "",
           "Sets never used in training, every note classified by the model's own instrument posterior over z_t "
           "(nothing fitted):", ""]
    for name, e in sets.items():
        per = e["per_instrument"]
        out += [f"**{name}** (`{e['manifest']}`, {e['notes']} notes): accuracy {e['accuracy']:.3f}, macro F1 "
                f"{e['macro_f1']:.3f}.", "",
                *_table(["instrument", *per], [["accuracy", *(f"{v:.2f}" for v in per.values())]]), ""]
    return out[:-1]


def write_timbre_gmvae_card(
    path: str | os.PathLike[str],
    metadata: dict[str, Any],
    config: dict[str, Any],
    sha256: str,
    checkpoint_name: str,
    curve: Sequence[dict[str, float]],
) -> None:
    """Write :func:`timbre_gmvae_card` to ``path`` (atomically)."""
    atomic_write_text(path, timbre_gmvae_card(metadata, config, sha256, checkpoint_name, curve))


def write_loss_csv(path: str | os.PathLike[str], rows: Sequence[dict[str, float]]) -> None:
    """A training run's per-epoch figures as CSV (6 significant digits), written atomically."""
    buf = io.StringIO()
    # Columns in first-seen order; a row without a figure (an epoch not validated) leaves it empty.
    fields = list(dict.fromkeys(k for row in rows for k in row))
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: f"{v:.6g}" for k, v in row.items()})
    atomic_write_text(path, buf.getvalue())
