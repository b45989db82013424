"""The pipeline against the simulator over real HTTP through the openai SDK."""

from __future__ import annotations

import socket

import pytest
from sqlalchemy import select

from models import DocumentExtraction, Job, JobState, LLMCall, ReviewItem, TicketClassification
from tests.support import submit, use_settings
from worker.db import session_scope
from worker.pipeline.run import run_job
from worker.settings import get_settings

NO_DATE_INVOICE = """\
                         Northwind Traders Ltd.
   Invoice Number: NW-2231
   Description                          Amount
   Consulting                          EUR 450.00
   TOTAL                               EUR 450.00
"""


def test_ticket_becomes_a_record(sluice_env: dict[str, str]) -> None:
    job_id = submit("support_tickets", {"text": "I want a refund for my last purchase"})

    outcome = run_job(job_id)

    assert outcome.state == JobState.SUCCEEDED
    with session_scope() as session:
        record = session.get(TicketClassification, job_id)
        assert record is not None
        assert record.category == "REFUND"
        [call] = session.scalars(select(LLMCall).where(LLMCall.job_id == job_id))
        assert call.http_status == 200
        assert call.prompt_tokens > 0
        assert call.cost_usd > 0
        assert call.messages[0]["role"] == "system"


def test_unfixable_output_goes_to_review_with_context(sluice_env: dict[str, str]) -> None:
    job_id = submit("invoices", {"text": NO_DATE_INVOICE, "doc_type": "invoice"})

    outcome = run_job(job_id)

    assert outcome.state == JobState.NEEDS_REVIEW
    with session_scope() as session:
        item = session.scalar(select(ReviewItem).where(ReviewItem.job_id == job_id))
        assert item is not None
        assert item.reason == "schema_violation"
        assert '"issue_date": "unknown"' in (item.raw_output or "")
        assert {e["field"] for e in item.errors} == {"issue_date"}
        assert session.get(DocumentExtraction, job_id) is None
        purposes = list(session.scalars(select(LLMCall.purpose).where(LLMCall.job_id == job_id)
                                        .order_by(LLMCall.created_at)))
        assert purposes == ["first", "repair", "escalation", "repair"]
        models = set(session.scalars(select(LLMCall.model).where(LLMCall.job_id == job_id)))
        assert models == {"sim-small", "sim-large"}


def test_unreachable_provider_schedules_a_retry(
    sluice_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    use_settings(monkeypatch, simulator_url=f"http://127.0.0.1:{closed_port}/v1")
    job_id = submit("support_tickets", {"text": "where is my order"})

    outcome = run_job(job_id)

    assert outcome.state == JobState.QUEUED
    assert outcome.retry_in_s is not None
    with session_scope() as session:
        job = session.get(Job, job_id)
        assert job is not None and job.state == JobState.QUEUED
        calls = session.scalars(select(LLMCall).where(LLMCall.job_id == job_id)).all()
        assert [c.error_kind for c in calls] == ["connection"] * get_settings().call_attempts
