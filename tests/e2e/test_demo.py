"""`sluice demo` as a user runs it: a real process, its own children, JSON on stdout."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from worker.demo.run import load_samples

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
    env = clean_env(tmp_path, SLUICE_DATABASE_URL=clean_db, SLUICE_REDIS_URL=clean_redis,
                    OPENAI_API_KEY="sk-test-" + "k" * 40)

    code, summary, stderr = run_demo(env, per_dataset=6)

    assert code == 0, stderr[-3000:]
    check_summary(summary, expected_jobs=6 + 6 + 6)
    check_logs_hold_no_content(tmp_path / "data" / "logs", per_dataset=6)


EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[a-z]{2,}", re.IGNORECASE)


def check_logs_hold_no_content(log_dir: Path, per_dataset: int) -> None:
    """No prompt text, ticket or document text, key or email address in Sluice's logs.

    The simulator's log is left out: it plays the provider, which receives the prompts.
    """
    logs = {path.name: path.read_text(encoding="utf-8", errors="replace")
            for path in log_dir.glob("*.log") if path.name != "simulator.log"}
    assert {"demo.log", "api.log", "worker.log"} <= set(logs)
    text = "\n".join(logs.values())
    assert "job.succeeded" in logs["worker.log"]
    secrets = ["sk-test-", "You classify customer-support tickets", "<ticket>", "<document>"]
    for secret in secrets:
        assert secret not in text
    for sample in load_samples(per_dataset):
        snippet = " ".join(sample["text"].split())[:40]
        if len(snippet) >= 20:
            assert snippet not in " ".join(text.split()), sample["id"]
    assert EMAIL.findall(text) == []


@pytest.mark.timeout(600)
def test_demo_on_embedded_services(tmp_path: Path) -> None:
    code, summary, stderr = run_demo(clean_env(tmp_path), per_dataset=2)

    assert code == 0, stderr[-3000:]
    check_summary(summary, expected_jobs=2 + 2 + 2)
    assert (tmp_path / "data" / "postgres").is_dir()
