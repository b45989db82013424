"""A failing provider over real HTTP trips its breaker and the route falls back."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from models import Attempt, JobState, LLMCall
from tests.support import ThreadedServer, submit, use_settings, write_config
from worker.db import session_scope
from worker.pipeline.run import run_job
from worker.simulator import SimulatorSettings, create_app


def backup_provider(url: str) -> str:
    return f"""
[providers.backup]
base_url = "{url}/v1"
region = "local"

[models.backup-small]
provider = "backup"
name = "backup-small"
tokenizer = "o200k_base"
context_window = 16384
max_output_tokens = 1024
input_usd_per_mtok = "0.20"
output_usd_per_mtok = "0.80"
price_date = 2026-11-01
"""


def test_broken_provider_trips_breaker_and_falls_back(
    clean_db: str, clean_redis: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = ThreadedServer(create_app(SimulatorSettings(server_error_rate=1.0)))
    healthy = ThreadedServer(create_app())
    with broken, healthy:
        config = write_config(tmp_path, backup_provider(healthy.url), {
            "simulated = true\n": "simulated = true\nbreaker = { failures = 3, "
            "cooldown_s = 60 }\n",
            'kind = "ticket_classification"\nroute = ["sim-small", "sim-large"]\n'
            'categories = [\n    "ACCOUNT"':
            'kind = "ticket_classification"\nroute = ["sim-small", "sim-large"]\n'
            'fallbacks = { sim-small = ["backup-small"] }\ncategories = [\n    "ACCOUNT"'})
        use_settings(monkeypatch, database_url=clean_db, redis_url=clean_redis,
                     config_file=config, simulator_url=f"{broken.url}/v1")
        job_ids = [submit("support_tickets", {"text": "I want a refund"}) for _ in range(3)]

        states = [run_job(job_id).state for job_id in job_ids]
        broken_requests = httpx.get(f"{broken.url}/_simulator/requests").json()

    assert states == [JobState.SUCCEEDED] * 3
    # The first job's three tries open the breaker; later jobs go straight to the backup.
    assert len(broken_requests) == 3
    assert {r["status"] for r in broken_requests} <= {500, 503}
    with session_scope() as session:
        last_log = session.scalar(select(Attempt.route_log).where(Attempt.job_id == job_ids[2]))
        assert {"event": "skipped", "step": 0, "model": "sim-small", "provider": "simulator",
                "reason": "circuit_open"} in last_log
        models = list(session.scalars(select(LLMCall.model).where(
            LLMCall.job_id == job_ids[2])))
    assert models == ["backup-small"]
