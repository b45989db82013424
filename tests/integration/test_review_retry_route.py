"""A job a reviewer retries on another model runs on that model, with fresh budgets."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from models import Job, JobState, LLMCall
from tests.review_support import job_in_review, reviewer
from tests.support import RoutedClient, use_settings
from worker.config import get_config
from worker.db import session_scope
from worker.pipeline.calls import Services
from worker.pipeline.run import run_job
from worker.review import service

TICKET = json.dumps({"category": "ORDER", "intent": "cancel_order", "priority": "normal",
                     "language": "en", "summary": "Customer wants to cancel an order."})


def test_retried_job_runs_only_on_the_chosen_model(clean_db: str) -> None:
    job_id, item_id = job_in_review()
    person = reviewer("ivan")
    with session_scope() as session:
        service.claim(session, item_id, person, ttl_s=600)
    with session_scope() as session:
        service.retry(session, item_id, person, get_config(), "sim-large")
    client = RoutedClient({"sim-large": [(TICKET, "stop")]})

    outcome = run_job(job_id, services=Services(client=client, sleep=lambda _: None))

    assert outcome.state == JobState.SUCCEEDED
    assert [r["model"] for r in client.requests] == ["sim-large"]
    with session_scope() as session:
        job = session.get(Job, job_id)
        assert job is not None and job.route_override == "sim-large"
        calls = session.scalars(select(LLMCall).where(LLMCall.job_id == job_id)).all()
        assert len(calls) == 5


def test_retry_restarts_the_request_budget(
    clean_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The job's first run spends all four requests before it lands in review.
    use_settings(monkeypatch, database_url=clean_db, max_requests_per_job=4)
    job_id, item_id = job_in_review()
    person = reviewer("judy")
    with session_scope() as session:
        service.claim(session, item_id, person, ttl_s=600)
    with session_scope() as session:
        service.retry(session, item_id, person, get_config(), "sim-small")
    client = RoutedClient({"sim-small": [(TICKET, "stop")]})

    outcome = run_job(job_id, services=Services(client=client, sleep=lambda _: None))

    assert outcome.state == JobState.SUCCEEDED
    assert len(client.requests) == 1
