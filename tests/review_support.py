"""Helpers of the review tests: reviewers, jobs sent to review, logged-in clients."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert

from models import Reviewer, ReviewItem, ReviewState, Tenant
from tests.support import scripted, submit
from worker import db
from worker.db import session_scope
from worker.pipeline.run import run_job
from worker.review.accounts import add_reviewer

PASSWORD = "correct horse battery"

TICKET = {"category": "ORDER", "intent": "cancel_order", "priority": "normal",
          "language": "en", "summary": "Customer wants to cancel an order."}
BAD_TICKET = {**TICKET, "category": "WEATHER"}
INVOICE = {"issuer": "Acme GmbH", "document_number": "INV-7", "issue_date": "2024-01-05",
           "currency": "EUR", "total": "119.00", "tax": "19.00",
           "line_items": [{"description": "Widgets", "quantity": "2", "unit_price": "50.00",
                           "amount": "100.00"}]}
BAD_INVOICE = {**INVOICE, "issue_date": "5 January 2024"}


def truncate_review_tables() -> None:
    """Empty the tables the shared clean_db fixture does not truncate."""
    with db.get_engine().begin() as conn:
        conn.execute(text("TRUNCATE reviewers, review_events, app_secrets CASCADE"))


def reviewer(username: str, password: str = PASSWORD) -> Reviewer:
    with session_scope() as session:
        return add_reviewer(session, username, password)


def job_in_review(workflow: str = "support_tickets", output: dict[str, Any] | None = None,
                  job_input: dict[str, Any] | None = None,
                  tenant: str = "default") -> tuple[uuid.UUID, uuid.UUID]:
    """Run a job whose every model answer is `output` (invalid), so it lands in review.

    Return the job id and its review item id.
    """
    if output is None:
        output = BAD_TICKET if workflow == "support_tickets" else BAD_INVOICE
    if job_input is None:
        job_input = ({"text": "Please cancel my order 1234."} if workflow == "support_tickets"
                     else {"text": "Invoice INV-7 from Acme GmbH, 2024-01-05, EUR 119.00"})
    with session_scope() as session:
        session.execute(insert(Tenant).values(id=tenant, name=tenant)
                        .on_conflict_do_nothing(index_elements=[Tenant.id]))
    job_id = submit(workflow, job_input, tenant)
    answer = json.dumps(output)
    run_job(job_id, services=scripted([(answer, "stop")] * 4)[1])
    with session_scope() as session:
        item_id = session.scalars(
            select(ReviewItem.id).where(ReviewItem.job_id == job_id,
                                        ReviewItem.state == ReviewState.OPEN)).one()
    return job_id, item_id


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "page has no CSRF field"
    return match.group(1)


def log_in(client: TestClient, username: str, password: str = PASSWORD) -> str:
    """Log the client in through the login form; return the session's CSRF token."""
    token = csrf_token(client.get("/review/login").text)
    response = client.post("/review/login", data={
        "username": username, "password": password, "csrf_token": token})
    assert response.status_code == 303, response.text
    return csrf_token(client.get("/review/").text)
