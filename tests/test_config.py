"""Typed config: defaults load, and every bad value is named with its key and the allowed range."""

from __future__ import annotations

from pathlib import Path

import pytest

from timbrespace import config
from timbrespace.config import ConfigError


def test_default_yaml_loads_and_matches_builtin_defaults() -> None:
    cfg = config.load(None)
    assert cfg.network.port == 57130
    assert cfg.audio.block_size == 256
    assert cfg.patch.model.is_absolute()
    assert cfg.patch.model.name == "patch-vae.pt"


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"network": {"port": 70000}}, "network.port = 70000 is out of range [0, 65535]"),
        ({"network": {"port": "x"}}, "network.port = 'x' must be an integer"),
        ({"network": {"tcp_framing": "cobs"}},
         "network.tcp_framing = 'cobs' is not allowed; expected one of ['slip', 'length']"),
        ({"audio": {"block_size": 300}}, "audio.block_size = 300 must be a power of two"),
        ({"audio": {"backend": "alsa"}}, "audio.backend = 'alsa' is not allowed"),
        ({"audio": {"polyphony": 0}}, "audio.polyphony = 0 is out of range [1, 64]"),
        ({"audio": {"sampel_rate": 1}}, "unknown key 'audio.sampel_rate'"),
        ({"patch": {"initial_latent": [0.5, 2]}}, "patch.initial_latent = [0.5, 2.0] must be two numbers in [0, 1]"),
        ({"network": {"zeroconf": "yes"}}, "network.zeroconf = 'yes' must be true or false"),
        ({"audio": 3}, "audio must be a mapping"),
        ({"network": {"max_connections": 0}}, "network.max_connections = 0 is out of range [1, 65536]"),
        ({"network": {"tcp_idle_timeout": 0}}, "network.tcp_idle_timeout = 0 is out of range [1.0, 604800.0]"),
        ({"network": {"tcp_frame_timeout": 7200}},
         "network.tcp_frame_timeout = 7200 is out of range [0.1, 3600.0]"),
        ({"network": {"max_connections": 8, "max_connections_per_host": 9}},
         "network.max_connections_per_host = 9 must not exceed network.max_connections = 8"),
        ({"input": {"onset_window": -1}}, "input.onset_window = -1 is out of range [0.0, 100.0]"),
        ({"input": {"onset_window": 20}},  # 1024 samples at 48 kHz, as the window's 21.3 ms
         "input.onset_window = 20 ms must be shorter than input.window = 21.3 ms"),
        ({"input": {"low_onset_window": 21.4}},  # 1028 samples, not rounded to a power of two
         "input.low_onset_window = 21.4 ms must be shorter than input.window = 21.3 ms"),
    ],
)
def test_bad_values_name_key_value_and_range(data: dict[str, object], needle: str) -> None:
    with pytest.raises(ConfigError) as e:
        config.from_dict(data, source="t.yaml")
    assert needle in str(e.value)
    assert str(e.value).startswith("t.yaml")


def test_bad_yaml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("network: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        config.load(bad)
    with pytest.raises(ConfigError, match="cannot read config"):
        config.load(tmp_path / "missing.yaml")


def test_examples_load() -> None:
    for p in sorted((config.REPO_ROOT / "config" / "examples").glob("*.yaml")):
        config.load(p)
