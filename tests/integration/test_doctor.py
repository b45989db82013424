"""`sluice doctor` against real services and the simulator."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.support import ThreadedServer, use_settings
from worker.cli import app

runner = CliRunner()


def test_doctor_passes_on_a_working_setup(sluice_env: dict[str, str]) -> None:
    result = runner.invoke(app, ["doctor"])

    assert result.exit_code == 0, result.output
    assert "FAILED" not in result.output
    assert "no workflow routes to it" in result.output


def test_doctor_names_what_is_wrong(
    sluice_env: dict[str, str], simulator: ThreadedServer, monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    use_settings(monkeypatch, simulator_url="http://127.0.0.1:9/v1",
                 redis_url="redis://127.0.0.1:9/0")

    result = runner.invoke(app, ["doctor"])

    assert result.exit_code == 1
    lines = {line.split("│")[1].strip(): line for line in result.output.splitlines()
             if line.count("│") > 3}
    assert "FAILED" in lines["redis"]
    assert "FAILED" in lines["provider simulator"]
    assert "ok" in lines["database"]
