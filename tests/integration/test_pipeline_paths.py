"""Pipeline paths driven by scripted provider answers, against the real database."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

from sqlalchemy import func, select, update

from models import Attempt, DocumentExtraction, Job, JobState, LLMCall, ReviewItem
from models.base import utcnow
from tests.support import scripted, submit
from worker.db import session_scope
from worker.errors import ProviderError
from worker.pipeline import store
from worker.pipeline.run import run_job
from worker.settings import get_settings

TICKET = json.dumps({"category": "ORDER", "intent": "cancel_order", "priority": "normal",
                     "language": "en", "summary": "Customer wants to cancel an order."})
BAD_TICKET = TICKET.replace('"ORDER"', '"WEATHER"')
INVOICE = json.dumps({"issuer": "Acme GmbH", "document_number": "7", "issue_date": "2024-01-05",
                      "currency": "EUR", "total": "10.00", "tax": None, "line_items": []})
NO_DATE_INVOICE = INVOICE.replace('"2024-01-05"', '"unknown"')


def job_row(job_id: uuid.UUID) -> Job:
    with session_scope() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job


def calls_of(job_id: uuid.UUID) -> list[LLMCall]:
    with session_scope() as session:
        return list(session.scalars(
            select(LLMCall).where(LLMCall.job_id == job_id).order_by(LLMCall.created_at)))


def test_repair_turns_invalid_output_into_a_record(clean_db: str) -> None:
    job_id = submit("support_tickets", {"text": "cancel my order please"})
    client, client_services = scripted([(BAD_TICKET, "stop"), (TICKET, "stop")])

    assert run_job(job_id, services=client_services).state == JobState.SUCCEEDED

    assert [c.purpose for c in calls_of(job_id)] == ["first", "repair"]
    repair_prompt = client.requests[1]["messages"][-1]["content"]
    assert "WEATHER" in repair_prompt
    assert "category" in repair_prompt


def test_twice_invalid_output_escalates_to_next_model(clean_db: str) -> None:
    job_id = submit("support_tickets", {"text": "cancel my order please"})
    client, client_services = scripted(
        [(BAD_TICKET, "stop"), (BAD_TICKET, "stop"), (TICKET, "stop")])

    assert run_job(job_id, services=client_services).state == JobState.SUCCEEDED

    assert [r["model"] for r in client.requests] == ["sim-small", "sim-small", "sim-large"]
    assert [c.purpose for c in calls_of(job_id)] == ["first", "repair", "escalation"]


def test_invalid_output_everywhere_ends_in_review_without_record(clean_db: str) -> None:
    job_id = submit("invoices", {"text": "Invoice 7 from Acme GmbH, total EUR 10.00"})
    _client, client_services = scripted([(NO_DATE_INVOICE, "stop")] * 4)

    assert run_job(job_id, services=client_services).state == JobState.NEEDS_REVIEW

    with session_scope() as session:
        item = session.scalar(select(ReviewItem).where(ReviewItem.job_id == job_id))
        assert item is not None
        assert item.reason == "schema_violation"
        assert item.raw_output == NO_DATE_INVOICE
        assert item.errors[0]["field"] == "issue_date"
        assert session.get(DocumentExtraction, job_id) is None
    assert job_row(job_id).reason == "schema_violation"


def test_every_call_is_priced_into_the_job(clean_db: str) -> None:
    job_id = submit("support_tickets", {"text": "cancel my order please"})
    run_job(job_id, services=scripted([(BAD_TICKET, "stop"), (TICKET, "stop")])[1])

    calls = calls_of(job_id)
    assert all(c.cost_usd > 0 for c in calls)
    assert job_row(job_id).cost_usd == sum(c.cost_usd for c in calls)


def test_truncated_output_is_not_accepted(clean_db: str) -> None:
    job_id = submit("support_tickets", {"text": "cancel my order please"})
    client, client_services = scripted([(TICKET, "length")] * 4)

    assert run_job(job_id, services=client_services).state == JobState.NEEDS_REVIEW
    assert job_row(job_id).reason == "truncated"
    budgets = [(r["model"], r["max_tokens"]) for r in client.requests]
    assert budgets == [("sim-small", 1024), ("sim-small", 2048),
                       ("sim-large", 2048), ("sim-large", 4096)]


def test_cut_off_answer_retried_with_larger_budget(clean_db: str) -> None:
    job_id = submit("support_tickets", {"text": "cancel my order please"})
    _client, client_services = scripted([(TICKET[:40], "length"), (TICKET, "stop")])

    assert run_job(job_id, services=client_services).state == JobState.SUCCEEDED
    assert [c.purpose for c in calls_of(job_id)] == ["first", "larger_output"]
    assert [c.max_tokens for c in calls_of(job_id)] == [1024, 2048]


def test_transient_error_requeues_with_delay(clean_db: str) -> None:
    job_id = submit("support_tickets", {"text": "cancel my order please"})
    error = ProviderError("boom", kind="server_error", transient=True, provider="simulator",
                          model="sim-small", status=503)

    outcome = run_job(job_id, services=scripted([error] * 3)[1])

    assert outcome.state == JobState.QUEUED
    # With zero jitter the first delay is half the base delay.
    assert outcome.retry_in_s == get_settings().retry_base_delay_s / 2
    job = job_row(job_id)
    assert job.state == JobState.QUEUED
    assert job.not_before is not None
    calls = calls_of(job_id)
    assert len(calls) == get_settings().call_attempts
    assert {c.error_kind for c in calls} == {"server_error"}
    assert {c.http_status for c in calls} == {503}


def test_early_redelivery_waits_for_not_before(clean_db: str) -> None:
    job_id = submit("support_tickets", {"text": "cancel my order please"})
    error = ProviderError("boom", kind="timeout", transient=True, provider="simulator",
                          model="sim-small")
    run_job(job_id, services=scripted([error] * 3)[1])

    early = run_job(job_id, services=scripted([])[1])

    assert early.retry_in_s is not None and early.retry_in_s > 0
    assert job_row(job_id).attempt_count == 1


def test_transient_errors_until_last_attempt_go_to_review(clean_db: str) -> None:
    job_id = submit("support_tickets", {"text": "cancel my order please"})
    error = ProviderError("boom", kind="timeout", transient=True, provider="simulator",
                          model="sim-small")
    for _ in range(get_settings().max_attempts):
        with session_scope() as session:
            session.execute(update(Job).where(Job.id == job_id).values(not_before=None))
        outcome = run_job(job_id, services=scripted([error] * 3)[1])

    assert outcome.state == JobState.NEEDS_REVIEW
    assert job_row(job_id).reason == "provider_exhausted"


def test_settled_job_is_not_run_again(clean_db: str) -> None:
    job_id = submit("support_tickets", {"text": "cancel my order please"})
    run_job(job_id, services=scripted([(TICKET, "stop")])[1])

    second, second_services = scripted([(TICKET, "stop")])
    assert run_job(job_id, services=second_services).state == JobState.SUCCEEDED
    assert second.requests == []
    assert job_row(job_id).attempt_count == 1


def test_only_one_of_two_claims_wins(clean_db: str) -> None:
    job_id = submit("support_tickets", {"text": "hello"})
    with session_scope() as session:
        first = store.claim(session, job_id, "a", lease_s=60, max_attempts=3)
    with session_scope() as session:
        second = store.claim(session, job_id, "b", lease_s=60, max_attempts=3)

    assert isinstance(first, store.Claim)
    assert isinstance(second, store.NotClaimed)
    assert second.state == JobState.RUNNING


def test_expired_lease_is_taken_over_and_old_owner_writes_nothing(clean_db: str) -> None:
    job_id = submit("support_tickets", {"text": "hello"})
    with session_scope() as session:
        stale = store.claim(session, job_id, "a", lease_s=60, max_attempts=3)
        session.execute(update(Job).where(Job.id == job_id)
                        .values(lease_expires_at=utcnow() - timedelta(seconds=1)))
    with session_scope() as session:
        fresh = store.claim(session, job_id, "b", lease_s=60, max_attempts=3)
    assert isinstance(stale, store.Claim) and isinstance(fresh, store.Claim)

    with session_scope() as session:
        assert not store.finish(session, stale, JobState.SUCCEEDED, "succeeded", None)
    with session_scope() as session:
        assert store.finish(session, fresh, JobState.SUCCEEDED, "succeeded", None)
        assert session.scalar(select(func.count()).select_from(Attempt)
                              .where(Attempt.job_id == job_id)) == 2


def test_job_whose_workers_keep_dying_goes_to_review(clean_db: str) -> None:
    job_id = submit("support_tickets", {"text": "hello"})
    for _ in range(get_settings().max_attempts):
        with session_scope() as session:
            store.claim(session, job_id, "dies", lease_s=60, max_attempts=3)
            session.execute(update(Job).where(Job.id == job_id)
                            .values(lease_expires_at=utcnow() - timedelta(seconds=1)))

    outcome = run_job(job_id, services=scripted([])[1])

    assert outcome.state == JobState.NEEDS_REVIEW
    assert job_row(job_id).reason == "attempts_exhausted"


def test_unknown_workflow_fails_the_job(clean_db: str) -> None:
    job_id = submit("retired_workflow", {"text": "hello"})

    assert run_job(job_id, services=scripted([])[1]).state == JobState.FAILED
    assert job_row(job_id).reason == "not_runnable"


def test_nul_in_output_goes_to_review(clean_db: str) -> None:
    job_id = submit("invoices", {"text": "Invoice 7 from Acme GmbH, total EUR 10.00"})
    nul_invoice = INVOICE.replace('"Acme GmbH"', '"Acme\\u0000GmbH"')
    _client, client_services = scripted([(nul_invoice, "stop")] * 4)

    assert run_job(job_id, services=client_services).state == JobState.NEEDS_REVIEW

    with session_scope() as session:
        item = session.scalar(select(ReviewItem).where(ReviewItem.job_id == job_id))
        assert item is not None
        assert item.errors[0]["field"] == "issuer"
        assert session.get(DocumentExtraction, job_id) is None


def test_review_keeps_the_most_useful_failed_output(clean_db: str) -> None:
    job_id = submit("support_tickets", {"text": "cancel my order please"})
    prose = "I am sorry, I cannot help with that."
    _, services = scripted([(BAD_TICKET, "stop"), (prose, "stop"), (prose, "stop"),
                            (prose, "stop")])

    assert run_job(job_id, services=services).state == JobState.NEEDS_REVIEW

    with session_scope() as session:
        item = session.scalar(select(ReviewItem).where(ReviewItem.job_id == job_id))
        assert item is not None
        assert item.reason == "invalid_json"
        assert item.raw_output == BAD_TICKET
        assert [e["field"] for e in item.errors] == ["category"]
