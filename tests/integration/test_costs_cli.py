"""`sluice costs` and `sluice tenants set-budget` against the real database and broker."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
import redis
from sqlalchemy import update
from typer.testing import CliRunner

from models import Job, JobState, Tenant
from tests.support import scripted, submit, use_settings
from worker.cli import app
from worker.db import session_scope
from worker.pipeline.run import run_job
from worker.redis_client import client_url

TICKET = json.dumps({"category": "ORDER", "intent": "cancel_order", "priority": "normal",
                     "language": "en", "summary": "Customer wants to cancel an order."})
runner = CliRunner()


@pytest.fixture
def env(clean_db: str, clean_redis: str, monkeypatch: pytest.MonkeyPatch) -> str:
    use_settings(monkeypatch, database_url=clean_db, redis_url=clean_redis)
    return clean_redis


def test_raised_budget_wakes_waiting_jobs(env: str) -> None:
    with session_scope() as session:
        session.execute(update(Tenant).where(Tenant.id == "default")
                        .values(daily_budget_usd=Decimal("0.00000001")))
    job_id = submit("support_tickets", {"text": "cancel my order"})
    assert run_job(job_id, services=scripted([(TICKET, "stop")])[1]).state == JobState.QUEUED

    result = runner.invoke(app, ["tenants", "set-budget", "default", "--daily-usd", "5"])

    assert result.exit_code == 0, result.output
    assert "daily budget 5 USD" in result.output
    assert "1 job(s) waiting" in result.output
    with session_scope() as session:
        job = session.get(Job, job_id)
        assert job is not None and job.not_before is None
    queue = redis.Redis.from_url(client_url(env))
    assert queue.llen("sluice") == 1
    queue.close()


@pytest.mark.parametrize("amount", ["NaN", "Infinity", "1e12", "-5", "abc"])
def test_bad_budget_is_rejected_cleanly(env: str, amount: str) -> None:
    result = runner.invoke(app, ["tenants", "set-budget", "default", "--daily-usd", amount])

    assert result.exit_code == 2
    assert "--daily-usd" in result.output


def test_costs_by_model_as_json(env: str) -> None:
    job_id = submit("support_tickets", {"text": "cancel my order"})
    run_job(job_id, services=scripted([(TICKET.replace("ORDER", "X"), "stop"),
                                       (TICKET, "stop")])[1])

    result = runner.invoke(app, ["costs", "--by", "model", "--json"])

    assert result.exit_code == 0, result.output
    [row] = [json.loads(line) for line in result.output.splitlines()]
    assert row["key"] == "sim-small"
    assert row["calls"] == 2
    assert Decimal(row["cost_usd"]) > 0
