"""`sluice demo` as a user runs it: a real process, its own children, JSON on stdout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

SETTLED = {"succeeded", "needs_review", "failed"}


def run_demo(env: dict[str, str], per_dataset: int) -> tuple[int, dict[str, Any], str]:
    completed = subprocess.run(
        [sys.executable, "-m", "worker", "demo", "--json", "--per-dataset", str(per_dataset)],
        env=env, capture_output=True, text=True, timeout=300,
    )
    summary = json.loads(completed.stdout) if completed.stdout.strip() else {}
    return completed.returncode, summary, completed.stderr


def clean_env(tmp_path: Path, **values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
    env["SLUICE_DATA_DIR"] = str(tmp_path / "data")
    env.update(values)
    return env


def check_summary(summary: dict[str, Any], expected_jobs: int) -> None:
    assert summary["jobs"] == expected_jobs
    assert sum(summary["states"].values()) == expected_jobs
    assert set(summary["states"]) <= SETTLED
    assert summary["accuracy_of"] == "simulator stand-in model"
    assert summary["llm_calls"] >= expected_jobs
    assert summary["prompt_tokens"] > 0
    assert float(summary["cost_usd"]) > 0
    assert summary["job_latency_ms"]["p50"] is not None
    assert summary["review_items"] == summary["states"].get("needs_review", 0)
    assert {"tickets_bitext.category", "tickets_banking77.intent", "invoices.total"} <= set(
        summary["accuracy"])


def test_demo_on_configured_services(
    clean_db: str, clean_redis: str, tmp_path: Path
) -> None:
    env = clean_env(tmp_path, SLUICE_DATABASE_URL=clean_db, SLUICE_REDIS_URL=clean_redis)

    code, summary, stderr = run_demo(env, per_dataset=6)

    assert code == 0, stderr[-3000:]
    check_summary(summary, expected_jobs=6 + 6 + 6)


@pytest.mark.timeout(600)
def test_demo_on_embedded_services(tmp_path: Path) -> None:
    code, summary, stderr = run_demo(clean_env(tmp_path), per_dataset=2)

    assert code == 0, stderr[-3000:]
    check_summary(summary, expected_jobs=2 + 2 + 2)
    assert (tmp_path / "data" / "postgres").is_dir()
