from __future__ import annotations

from pathlib import Path

import pytest

from worker.config import default_config_path, load_config
from worker.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sluice.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_bundled_default_is_valid() -> None:
    config = load_config(default_config_path())
    assert set(config.workflows) == {"support_tickets", "banking_tickets", "invoices"}
    assert config.uses_simulator()


def test_unknown_key_is_named(tmp_path: Path) -> None:
    text = default_config_path().read_text().replace(
        'region = "local"', 'region = "local"\nregoin = "eu"')
    with pytest.raises(ConfigError, match=r"providers\.simulator\.regoin: unknown key"):
        load_config(write(tmp_path, text))


def test_route_to_unknown_model_is_named(tmp_path: Path) -> None:
    text = default_config_path().read_text().replace(
        'kind = "document_extraction"\nroute = ["sim-small", "sim-large"]',
        'kind = "document_extraction"\nroute = ["sim-tiny"]')
    with pytest.raises(ConfigError, match=r"workflows\.invoices\.route names 'sim-tiny'"):
        load_config(write(tmp_path, text))


def test_bad_price_is_named(tmp_path: Path) -> None:
    text = default_config_path().read_text().replace(
        'output_usd_per_mtok = "10.00"', 'output_usd_per_mtok = "ten"', 1)
    with pytest.raises(ConfigError, match=r"models\.sim-large\.output_usd_per_mtok"):
        load_config(write(tmp_path, text))


def test_missing_file_says_which_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="SLUICE_CONFIG_FILE"):
        load_config(tmp_path / "absent.toml")


def test_simulator_url_replaces_simulated_providers_only() -> None:
    config = load_config(default_config_path(), "http://127.0.0.1:9999/v1")
    assert config.providers["simulator"].base_url == "http://127.0.0.1:9999/v1"
    assert config.providers["openai"].base_url == "https://api.openai.com/v1"


def test_model_larger_than_token_bucket_is_named(tmp_path: Path) -> None:
    text = default_config_path().read_text().replace(
        "simulated = true\n", "simulated = true\nlimits = { tokens_per_minute = 100 }\n")
    with pytest.raises(ConfigError, match=r"models\.sim-small\.max_output_tokens = 1024"):
        load_config(write(tmp_path, text))


def test_fallback_to_itself_is_rejected(tmp_path: Path) -> None:
    text = default_config_path().read_text().replace(
        'kind = "document_extraction"\nroute = ["sim-small", "sim-large"]',
        'kind = "document_extraction"\nroute = ["sim-small", "sim-large"]\n'
        'fallbacks = { sim-small = ["sim-small"] }')
    with pytest.raises(ConfigError, match="a fallback must be another model"):
        load_config(write(tmp_path, text))
