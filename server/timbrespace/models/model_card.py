"""Model cards: the markdown that ships next to a checkpoint and says what it is."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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
        "",
        "## Limits",
        "",
        "- Two latent dimensions cannot hold 41 parameters: reconstructions are lossy and pulled toward",
        "  common settings; the map is for exploring, not for recalling a preset exactly (use the library).",
        "- Trained on parameter values only; nearby points need not sound alike.",
        "",
        "## Retrain",
        "",
        "```",
        "timbrespace train patch-vae --out models/patch-vae",
        "# same as: python -m timbrespace.models.train_patch_vae --out models/patch-vae",
        "```",
        "",
        "Same seed, same machine, same torch: the same weights (sha256 above). Options: `--epochs`, "
        "`--seed`, `--beta`, `--hidden`, `--batch-size`, `--lr`, `--banks DIR...`.",
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
    """Write :func:`patch_vae_card` to ``path``."""
    Path(path).write_text(patch_vae_card(metadata, config, sha256, checkpoint_name, curve), encoding="utf-8")
