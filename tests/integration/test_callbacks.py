"""The callback outbox row written in the transaction that ends a job."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import select, update

from models import CallbackOutbox, Job, JobState, OutboxState, Tenant
from tests.review_support import INVOICE, job_in_review, reviewer, truncate_review_tables
from tests.support import scripted, submit
from worker.config import get_config
from worker.db import session_scope
from worker.pipeline.results import save_record
from worker.pipeline.run import run_job
from worker.review import service
from worker.workflows import get_workflow

TICKET = {"category": "ORDER", "intent": "cancel_order", "priority": "normal",
          "language": "en", "summary": "Customer wants to cancel an order."}
TENANT_URL = "https://results.example.com/sluice"


def new_tenant(callback_url: str | None) -> str:
    tenant_id = "cb-" + uuid.uuid4().hex[:12]
    with session_scope() as session:
        session.add(Tenant(id=tenant_id, name=tenant_id, callback_url=callback_url))
    return tenant_id


@pytest.fixture
def review_db(clean_db: str) -> Iterator[str]:
    yield clean_db
    truncate_review_tables()


def outbox_rows(job_id: uuid.UUID) -> list[CallbackOutbox]:
    with session_scope() as session:
        return list(session.scalars(select(CallbackOutbox).where(CallbackOutbox.job_id == job_id)))


def succeed(tenant: str) -> uuid.UUID:
    job_id = submit("support_tickets", {"text": "Please cancel my order 1234."}, tenant)
    outcome = run_job(job_id, services=scripted([(json.dumps(TICKET), "stop")])[1])
    assert outcome.state == JobState.SUCCEEDED
    return job_id


def test_succeeded_job_writes_one_callback(clean_db: str) -> None:
    tenant = new_tenant(TENANT_URL)
    job_id = succeed(tenant)

    rows = outbox_rows(job_id)

    assert len(rows) == 1
    row = rows[0]
    assert row.event == "job.succeeded"
    assert row.state == OutboxState.PENDING
    assert row.tenant_id == tenant
    assert row.target_url == TENANT_URL
    assert re.fullmatch(r"msg_[0-9a-f]{32}", row.webhook_id)
    assert row.payload["type"] == "job.succeeded"
    data = row.payload["data"]
    assert data["job_id"] == str(job_id)
    assert data["workflow"] == "support_tickets"
    assert data["state"] == "succeeded"
    assert data["reason"] is None
    assert data["record"] == TICKET


def test_job_url_overrides_tenant_url(clean_db: str) -> None:
    tenant = new_tenant(TENANT_URL)
    job_id = submit("support_tickets", {"text": "Please cancel my order 1234."}, tenant)
    with session_scope() as session:
        session.execute(update(Job).where(Job.id == job_id)
                        .values(callback_url="https://job.example.com/hook",
                                external_id="order-1234"))
    run_job(job_id, services=scripted([(json.dumps(TICKET), "stop")])[1])

    [row] = outbox_rows(job_id)

    assert row.target_url == "https://job.example.com/hook"
    assert row.payload["data"]["external_id"] == "order-1234"


def test_no_callback_url_writes_nothing(clean_db: str) -> None:
    job_id = succeed(new_tenant(None))

    assert outbox_rows(job_id) == []


def test_failed_job_writes_one_callback(clean_db: str) -> None:
    job_id = submit("no_such_workflow", {"text": "anything"}, new_tenant(TENANT_URL))

    assert run_job(job_id, services=scripted([])[1]).state == JobState.FAILED

    [row] = outbox_rows(job_id)
    assert row.event == "job.failed"
    assert row.payload["data"]["state"] == "failed"
    assert row.payload["data"]["reason"] == "not_runnable"
    assert row.payload["data"]["record"] is None


def test_needs_review_writes_nothing(review_db: str) -> None:
    job_id, _item_id = job_in_review(tenant=new_tenant(TENANT_URL))

    assert outbox_rows(job_id) == []


def test_review_approval_writes_one_callback(review_db: str) -> None:
    alice = reviewer("alice")
    job_id, item_id = job_in_review("invoices", tenant=new_tenant(TENANT_URL))
    with session_scope() as session:
        service.claim(session, item_id, alice, ttl_s=600)
    with session_scope() as session:
        result = service.approve(session, item_id, alice, get_config(), json.dumps(INVOICE))
    assert result.ok

    [row] = outbox_rows(job_id)
    assert row.event == "job.succeeded"
    record = row.payload["data"]["record"]
    # Money stays a decimal string and dates ISO 8601, as in the validated record.
    assert record["total"] == "119.00"
    assert record["issue_date"] == "2024-01-05"
    assert record["line_items"][0]["unit_price"] == "50.00"


def test_review_rejection_writes_one_callback(review_db: str) -> None:
    alice = reviewer("alice")
    job_id, item_id = job_in_review(tenant=new_tenant(TENANT_URL))
    with session_scope() as session:
        service.claim(session, item_id, alice, ttl_s=600)
    with session_scope() as session:
        service.reject(session, item_id, alice, "not a support ticket")

    [row] = outbox_rows(job_id)
    assert row.event == "job.failed"
    assert row.payload["data"]["reason"] == "rejected"


def test_rolled_back_transaction_leaves_no_callback(clean_db: str) -> None:
    job_id = submit("support_tickets", {"text": "Please cancel my order 1234."},
                    new_tenant(TENANT_URL))
    workflow = get_workflow(get_config(), "support_tickets")
    output = workflow.validate_output(json.dumps(TICKET)).output
    assert output is not None

    with pytest.raises(RuntimeError, match="after the record"), session_scope() as session:
        save_record(session, workflow, job_id, output)
        session.flush()
        assert len(session.scalars(select(CallbackOutbox)).all()) == 1
        raise RuntimeError("failure after the record was written")

    assert outbox_rows(job_id) == []


def test_callback_for_review_state_rejected(clean_db: str) -> None:
    from worker.callbacks.outbox import write_callback

    job_id = submit("support_tickets", {"text": "x"}, new_tenant(TENANT_URL))

    with pytest.raises(ValueError, match="not a final state"), session_scope() as session:
        write_callback(session, job_id, JobState.NEEDS_REVIEW)
