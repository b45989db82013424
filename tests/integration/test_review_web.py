"""The review pages over HTTP (in-process ASGI) with the real database and broker."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from models import Job, JobState, ReviewEvent, ReviewItem, ReviewState, TicketClassification
from models.base import utcnow
from tests.review_support import (
    BAD_INVOICE,
    INVOICE,
    TICKET,
    csrf_token,
    job_in_review,
    log_in,
    reviewer,
    truncate_review_tables,
)
from tests.support import scripted, use_settings
from worker.api import create_app
from worker.db import session_scope
from worker.pipeline.run import run_job


@pytest.fixture
def review_env(clean_db: str, clean_redis: str,
               monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    use_settings(monkeypatch, database_url=clean_db, redis_url=clean_redis)
    reviewer("alice")
    reviewer("bob")
    yield {"redis_url": clean_redis}
    truncate_review_tables()


def client() -> TestClient:
    return TestClient(create_app(), follow_redirects=False)


@pytest.fixture
def alice(review_env: dict[str, str]) -> Iterator[tuple[TestClient, str]]:
    with client() as http:
        yield http, log_in(http, "alice")


@pytest.fixture
def bob(review_env: dict[str, str]) -> Iterator[tuple[TestClient, str]]:
    with client() as http:
        yield http, log_in(http, "bob")


def item_row(item_id: uuid.UUID) -> ReviewItem:
    with session_scope() as session:
        item = session.get(ReviewItem, item_id)
        assert item is not None
        return item


def job_row(job_id: uuid.UUID) -> Job:
    with session_scope() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job


def actions(item_id: uuid.UUID) -> list[str]:
    with session_scope() as session:
        return list(session.scalars(select(ReviewEvent.action)
                                    .where(ReviewEvent.item_id == item_id)
                                    .order_by(ReviewEvent.at)))


def post(session: tuple[TestClient, str], path: str, **data: str) -> object:
    http, token = session
    return http.post(path, data={"csrf_token": token, **data})


def claim(session: tuple[TestClient, str], item_id: uuid.UUID) -> None:
    response = post(session, f"/review/items/{item_id}/claim")
    assert response.status_code == 303, response.text  # type: ignore[attr-defined]


def ticket_form(**changes: str) -> dict[str, str]:
    return {**TICKET, **changes}


# Access --------------------------------------------------------------------------------


def test_anonymous_pages_redirect_to_login(review_env: dict[str, str]) -> None:
    _job_id, item_id = job_in_review()
    with client() as http:
        for path in ("/review/", f"/review/items/{item_id}"):
            response = http.get(path)
            assert response.status_code == 303
            assert response.headers["location"].startswith("/review/login?next=")

        response = http.post(f"/review/items/{item_id}/claim", data={"csrf_token": "x"})
        assert response.status_code == 303
        assert response.headers["location"].startswith("/review/login")
    assert item_row(item_id).claimed_by_id is None


def test_bare_review_path_leads_to_queue(review_env: dict[str, str]) -> None:
    with client() as http:
        response = http.get("/review")
        assert response.status_code in (307, 308)
        assert response.headers["location"].endswith("/review/")


def test_failed_login_shows_error(review_env: dict[str, str]) -> None:
    with client() as http:
        token = csrf_token(http.get("/review/login").text)
        for username, password in (("alice", "wrong password!"), ("nobody", "whatever123")):
            response = http.post("/review/login", data={
                "username": username, "password": password, "csrf_token": token})
            assert response.status_code == 401
            assert "Invalid username or password" in response.text
        assert http.get("/review/").status_code == 303


def test_login_returns_to_requested_page(review_env: dict[str, str]) -> None:
    _job_id, item_id = job_in_review()
    with client() as http:
        token = csrf_token(http.get("/review/login").text)
        response = http.post("/review/login", data={
            "username": "alice", "password": "correct horse battery", "csrf_token": token,
            "next": f"/review/items/{item_id}"})
        assert response.status_code == 303
        assert response.headers["location"] == f"/review/items/{item_id}"


def test_login_ignores_next_outside_review(review_env: dict[str, str]) -> None:
    with client() as http:
        token = csrf_token(http.get("/review/login").text)
        response = http.post("/review/login", data={
            "username": "alice", "password": "correct horse battery", "csrf_token": token,
            "next": "//example.org/review/"})
        assert response.headers["location"] == "/review/"


def test_disabled_reviewer_loses_session(alice: tuple[TestClient, str]) -> None:
    from worker.review.accounts import set_disabled

    http, _token = alice
    assert http.get("/review/").status_code == 200
    with session_scope() as session:
        set_disabled(session, "alice", disabled=True)
    assert http.get("/review/").status_code == 303


def test_logout_ends_the_session(alice: tuple[TestClient, str]) -> None:
    response = post(alice, "/review/logout")
    assert response.status_code == 303  # type: ignore[attr-defined]
    assert alice[0].get("/review/").status_code == 303


def test_post_without_csrf_rejected(alice: tuple[TestClient, str]) -> None:
    http, _token = alice
    _job_id, item_id = job_in_review()

    missing = http.post(f"/review/items/{item_id}/claim")
    wrong = http.post(f"/review/items/{item_id}/claim", data={"csrf_token": "guess"})

    assert missing.status_code == 403
    assert wrong.status_code == 403
    assert "did not come from this site" in wrong.text
    assert item_row(item_id).claimed_by_id is None
    assert actions(item_id) == []


def test_login_form_needs_csrf_token(review_env: dict[str, str]) -> None:
    with client() as http:
        response = http.post("/review/login", data={
            "username": "alice", "password": "correct horse battery"})
        assert response.status_code == 403


def test_pages_send_security_headers(alice: tuple[TestClient, str]) -> None:
    response = alice[0].get("/review/")
    assert response.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    cookie = alice[0].cookies.jar
    assert all(c.path == "/review" for c in cookie if c.name == "sluice_review")


# Queue ---------------------------------------------------------------------------------


def test_queue_filters_and_counts(alice: tuple[TestClient, str]) -> None:
    ticket_job, _ = job_in_review("support_tickets")
    invoice_job, _ = job_in_review("invoices", tenant="acme")
    old_job, old_item = job_in_review("support_tickets", tenant="acme")
    with session_scope() as session:
        session.execute(update(ReviewItem).where(ReviewItem.id == old_item)
                        .values(created_at=utcnow() - timedelta(hours=30)))
    http, _token = alice

    page = http.get("/review/").text
    assert all(str(job) in page for job in (ticket_job, invoice_job, old_job))
    assert "rule_violation <strong>2</strong>" in page
    assert "schema_violation <strong>1</strong>" in page
    assert "30 h 0 min" in page

    invoices = http.get("/review/", params={"workflow": "invoices"}).text
    assert str(invoice_job) in invoices
    assert str(ticket_job) not in invoices

    acme_tickets = http.get("/review/", params={"tenant": "acme",
                                                "reason": "rule_violation"}).text
    assert str(old_job) in acme_tickets
    assert str(invoice_job) not in acme_tickets

    old = http.get("/review/", params={"older_than_h": "24"}).text
    assert str(old_job) in old
    assert str(ticket_job) not in old


def test_queue_names_a_bad_age_filter(alice: tuple[TestClient, str]) -> None:
    page = alice[0].get("/review/", params={"older_than_h": "soon"})
    assert page.status_code == 200
    assert "Older than must be a number of hours" in page.text


def test_queue_shows_who_holds_a_claim(alice: tuple[TestClient, str],
                                       bob: tuple[TestClient, str]) -> None:
    _job_id, item_id = job_in_review()
    claim(alice, item_id)
    row = bob[0].get("/review/").text.split(str(item_id))[1].split("</tr>")[0]
    assert "alice" in row


# Item page -----------------------------------------------------------------------------


def test_item_page_shows_attempts(alice: tuple[TestClient, str]) -> None:
    job_id, item_id = job_in_review("invoices", output={**BAD_INVOICE,
                                                        "issuer": "<b>Acme</b> GmbH"})
    page = alice[0].get(f"/review/items/{item_id}")

    assert page.status_code == 200
    html = page.text
    assert "Invoice INV-7 from Acme GmbH" in html
    assert html.count("Attempt 1") == 1
    for shown in ("sim-small", "sim-large", "escalation", "repair"):
        assert shown in html
    assert "issue_date" in html
    # Model output is shown as text, never as markup.
    assert "&lt;b&gt;Acme&lt;/b&gt; GmbH" in html
    assert "<b>Acme</b>" not in html
    assert 'name="line_items.0.amount" value="100.00"' in html
    assert 'name="issue_date" value="5 January 2024"' in html
    assert str(job_id) in html


def test_item_page_offers_configured_labels(alice: tuple[TestClient, str]) -> None:
    _job_id, item_id = job_in_review()
    html = alice[0].get(f"/review/items/{item_id}").text
    assert '<option value="WEATHER" selected>WEATHER (not in the list)</option>' in html
    assert '<option value="REFUND">REFUND</option>' in html


def test_unknown_pages_are_html_errors(alice: tuple[TestClient, str]) -> None:
    http, _token = alice
    _job_id, item_id = job_in_review()

    for path in (f"/review/items/{uuid.uuid4()}", "/review/items/not-a-uuid",
                 "/review/nowhere"):
        response = http.get(path)
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("text/html")
    assert http.get(f"/review/items/{item_id}/claim").status_code == 405


# Claims --------------------------------------------------------------------------------


def test_acting_without_claim_fails(alice: tuple[TestClient, str]) -> None:
    job_id, item_id = job_in_review()
    response = post(alice, f"/review/items/{item_id}/approve", **ticket_form())

    assert response.status_code == 409  # type: ignore[attr-defined]
    assert "before acting on it" in response.text  # type: ignore[attr-defined]
    assert job_row(job_id).state == JobState.NEEDS_REVIEW


def test_claimed_item_blocks_other_reviewer(
    alice: tuple[TestClient, str], bob: tuple[TestClient, str]
) -> None:
    job_id, item_id = job_in_review()
    claim(alice, item_id)

    bob_claim = post(bob, f"/review/items/{item_id}/claim")
    bob_reject = post(bob, f"/review/items/{item_id}/reject", reason="spam")

    for response in (bob_claim, bob_reject):
        assert response.status_code == 409  # type: ignore[attr-defined]
        assert "claimed by alice" in response.text  # type: ignore[attr-defined]
    assert job_row(job_id).state == JobState.NEEDS_REVIEW
    assert actions(item_id) == ["claim"]


def test_expired_claim_can_be_taken_over(
    alice: tuple[TestClient, str], bob: tuple[TestClient, str]
) -> None:
    _job_id, item_id = job_in_review()
    claim(alice, item_id)
    with session_scope() as session:
        session.execute(update(ReviewItem).where(ReviewItem.id == item_id)
                        .values(claim_expires_at=utcnow() - timedelta(seconds=1)))

    claim(bob, item_id)
    alice_reject = post(alice, f"/review/items/{item_id}/reject", reason="spam")

    assert alice_reject.status_code == 409  # type: ignore[attr-defined]
    assert "claimed by bob" in alice_reject.text  # type: ignore[attr-defined]
    with session_scope() as session:
        events = list(session.scalars(select(ReviewEvent).where(ReviewEvent.item_id == item_id)
                                      .order_by(ReviewEvent.at)))
    assert [e.action for e in events] == ["claim", "claim"]
    assert events[1].detail["taken_over_from"] == "alice"


def test_own_expired_claim_must_be_renewed(alice: tuple[TestClient, str]) -> None:
    _job_id, item_id = job_in_review()
    claim(alice, item_id)
    with session_scope() as session:
        session.execute(update(ReviewItem).where(ReviewItem.id == item_id)
                        .values(claim_expires_at=utcnow() - timedelta(seconds=1)))

    response = post(alice, f"/review/items/{item_id}/reject", reason="spam")

    assert response.status_code == 409  # type: ignore[attr-defined]
    assert "your claim on review item" in response.text  # type: ignore[attr-defined]


def test_released_claim_frees_the_item(alice: tuple[TestClient, str],
                                       bob: tuple[TestClient, str]) -> None:
    _job_id, item_id = job_in_review()
    claim(alice, item_id)
    assert post(alice, f"/review/items/{item_id}/release").status_code == 303  # type: ignore[attr-defined]
    claim(bob, item_id)
    assert actions(item_id) == ["claim", "release", "claim"]


# Approve -------------------------------------------------------------------------------


def test_approve_invalid_then_valid_correction(alice: tuple[TestClient, str]) -> None:
    job_id, item_id = job_in_review()
    claim(alice, item_id)

    invalid = post(alice, f"/review/items/{item_id}/approve",
                   **ticket_form(language="zz"))
    assert invalid.status_code == 422  # type: ignore[attr-defined]
    assert ('data-field="language">language is not an ISO 639-1 code'
            in invalid.text)  # type: ignore[attr-defined]
    assert 'name="language" value="zz"' in invalid.text  # type: ignore[attr-defined]
    assert job_row(job_id).state == JobState.NEEDS_REVIEW
    with session_scope() as session:
        assert session.get(TicketClassification, job_id) is None

    valid = post(alice, f"/review/items/{item_id}/approve", **ticket_form())
    assert valid.status_code == 303  # type: ignore[attr-defined]

    job = job_row(job_id)
    assert job.state == JobState.SUCCEEDED
    assert job.reason is None
    with session_scope() as session:
        record = session.get(TicketClassification, job_id)
        assert record is not None
        assert record.category == "ORDER"
    item = item_row(item_id)
    assert item.state == ReviewState.APPROVED
    assert item.resolved_by == "alice"
    assert item.approved_output == TICKET
    assert actions(item_id) == ["claim", "approve_invalid", "approve"]
    page = alice[0].get(f"/review/items/{item_id}").text
    assert "Approved: the record is stored" in page


def test_line_item_error_beside_field(alice: tuple[TestClient, str]) -> None:
    job_id, item_id = job_in_review("invoices")
    claim(alice, item_id)
    form = {key: value for key, value in INVOICE.items() if key != "line_items"}
    form.update({"tax": "19.00", "line_items.0.description": "Widgets",
                 "line_items.0.quantity": "2", "line_items.0.unit_price": "50.00",
                 "line_items.0.amount": "1OO.00", "line_items.1.description": ""})

    invalid = post(alice, f"/review/items/{item_id}/approve", **form)

    assert invalid.status_code == 422  # type: ignore[attr-defined]
    assert 'data-field="line_items.0.amount"' in invalid.text  # type: ignore[attr-defined]

    form["line_items.0.amount"] = "100.00"
    valid = post(alice, f"/review/items/{item_id}/approve", **form)
    assert valid.status_code == 303  # type: ignore[attr-defined]
    assert job_row(job_id).state == JobState.SUCCEEDED
    assert item_row(item_id).approved_output == INVOICE


def test_approve_never_stores_unstorable_text(alice: tuple[TestClient, str]) -> None:
    # PostgreSQL text cannot contain NUL, so whichever layer rejects it, nothing is stored.
    job_id, item_id = job_in_review()
    claim(alice, item_id)

    response = post(alice, f"/review/items/{item_id}/approve",
                    **ticket_form(summary="Cancel\x00order"))

    assert response.status_code == 422  # type: ignore[attr-defined]
    assert job_row(job_id).state == JobState.NEEDS_REVIEW
    assert item_row(item_id).state == ReviewState.OPEN
    with session_scope() as session:
        assert session.get(TicketClassification, job_id) is None


def test_nul_characters_handled(alice: tuple[TestClient, str]) -> None:
    http, _token = alice
    _job_id, item_id = job_in_review()
    claim(alice, item_id)

    assert http.get("/review/", params={"tenant": "de\x00fault"}).status_code == 200
    rejected = post(alice, f"/review/items/{item_id}/reject", reason="spam\x00bot")
    assert rejected.status_code == 303  # type: ignore[attr-defined]
    assert item_row(item_id).resolution_note == "spam\ufffdbot"
    with client() as anonymous:
        token = csrf_token(anonymous.get("/review/login").text)
        login = anonymous.post("/review/login", data={
            "username": "ali\x00ce", "password": "correct horse battery",
            "csrf_token": token})
        assert login.status_code == 401


def test_add_row_keeps_values(alice: tuple[TestClient, str]) -> None:
    job_id, item_id = job_in_review("invoices")
    claim(alice, item_id)
    response = post(alice, f"/review/items/{item_id}/approve", add_row="1",
                    issuer="Changed", **{"line_items.0.description": "Widgets",
                                         "line_items.0.amount": "100.00"})
    assert response.status_code == 200  # type: ignore[attr-defined]
    html = response.text  # type: ignore[attr-defined]
    assert 'name="issuer" value="Changed"' in html
    assert 'name="line_items.2.amount"' in html
    assert job_row(job_id).state == JobState.NEEDS_REVIEW


def test_approve_fails_once_job_left_review(alice: tuple[TestClient, str]) -> None:
    job_id, item_id = job_in_review()
    claim(alice, item_id)
    with session_scope() as session:
        session.execute(update(Job).where(Job.id == job_id).values(state=JobState.FAILED))

    response = post(alice, f"/review/items/{item_id}/approve", **ticket_form())

    assert response.status_code == 409  # type: ignore[attr-defined]
    assert "not needs_review" in response.text  # type: ignore[attr-defined]
    assert item_row(item_id).state == ReviewState.OPEN
    with session_scope() as session:
        assert session.get(TicketClassification, job_id) is None


def test_resolved_item_allows_no_action(alice: tuple[TestClient, str]) -> None:
    _job_id, item_id = job_in_review()
    claim(alice, item_id)
    post(alice, f"/review/items/{item_id}/approve", **ticket_form())

    again = post(alice, f"/review/items/{item_id}/reject", reason="changed my mind")

    assert again.status_code == 409  # type: ignore[attr-defined]
    assert "already approved by alice" in again.text  # type: ignore[attr-defined]


# Reject and retry ----------------------------------------------------------------------


def test_reject_fails_the_job(alice: tuple[TestClient, str]) -> None:
    job_id, item_id = job_in_review()
    claim(alice, item_id)

    empty = post(alice, f"/review/items/{item_id}/reject", reason="  ")
    assert empty.status_code == 400  # type: ignore[attr-defined]

    response = post(alice, f"/review/items/{item_id}/reject", reason="Not a support ticket")
    assert response.status_code == 303  # type: ignore[attr-defined]
    job = job_row(job_id)
    assert job.state == JobState.FAILED
    assert job.reason == "rejected"
    item = item_row(item_id)
    assert item.state == ReviewState.REJECTED
    assert item.resolution_note == "Not a support ticket"
    assert actions(item_id) == ["claim", "reject"]


def queued_job_ids(redis_url: str) -> list[str]:
    client = redis.Redis.from_url(redis_url)
    raw = client.lrange("sluice", 0, -1)
    client.close()
    return [json.loads(base64.b64decode(json.loads(m)["body"]))[0][0] for m in raw]


def test_retry_requeues_job_on_chosen_model(alice: tuple[TestClient, str],
                                            review_env: dict[str, str]) -> None:
    job_id, item_id = job_in_review()
    claim(alice, item_id)
    assert job_row(job_id).attempt_count == 1

    outside = post(alice, f"/review/items/{item_id}/retry", model="gpt-4o")
    assert outside.status_code == 400  # type: ignore[attr-defined]
    assert "not in the route" in outside.text  # type: ignore[attr-defined]

    response = post(alice, f"/review/items/{item_id}/retry", model="sim-large")
    assert response.status_code == 303  # type: ignore[attr-defined]

    job = job_row(job_id)
    assert job.state == JobState.QUEUED
    assert job.route_override == "sim-large"
    assert job.reason is None
    assert job.not_before is None
    assert job.deferrals == job.attempt_count
    assert queued_job_ids(review_env["redis_url"]) == [str(job_id)]
    assert item_row(item_id).state == ReviewState.RETRIED
    assert actions(item_id) == ["claim", "retry"]


def test_retried_job_can_return_to_review(alice: tuple[TestClient, str]) -> None:
    job_id, item_id = job_in_review()
    claim(alice, item_id)
    post(alice, f"/review/items/{item_id}/retry", model="sim-large")

    outcome = run_job(job_id, services=scripted([(json.dumps({**TICKET, "category": "X"}),
                                                  "stop")] * 4)[1])

    assert outcome.state == JobState.NEEDS_REVIEW
    with session_scope() as session:
        states = sorted(s.value for s in session.scalars(
            select(ReviewItem.state).where(ReviewItem.job_id == job_id)))
    assert states == ["open", "retried"]


def test_retried_job_gets_fresh_attempt_budget(alice: tuple[TestClient, str]) -> None:
    job_id, item_id = job_in_review()
    with session_scope() as session:
        session.execute(update(Job).where(Job.id == job_id).values(attempt_count=3))
    claim(alice, item_id)
    post(alice, f"/review/items/{item_id}/retry", model="sim-small")

    outcome = run_job(job_id, services=scripted([(json.dumps(TICKET), "stop")])[1])

    assert outcome.state == JobState.SUCCEEDED
    assert job_row(job_id).attempt_count == 4


def test_item_page_shows_audit_trail(alice: tuple[TestClient, str]) -> None:
    _job_id, item_id = job_in_review()
    claim(alice, item_id)
    post(alice, f"/review/items/{item_id}/approve", **ticket_form(priority="someday"))
    post(alice, f"/review/items/{item_id}/reject", reason="duplicate of another ticket")

    audit = alice[0].get(f"/review/items/{item_id}").text.split('id="audit"')[1]

    for action in ("claim", "approve_invalid", "reject"):
        assert f"<td>{action}</td>" in audit
    assert "duplicate of another ticket" in audit
    with session_scope() as session:
        events = list(session.scalars(select(ReviewEvent).where(ReviewEvent.item_id == item_id)
                                      .order_by(ReviewEvent.at)))
    assert events[1].detail["errors"][0]["field"] == "priority"
    assert events[2].detail == {"reason": "duplicate of another ticket"}
