"""The per-tenant job API and intake limits: rate, backpressure, list, cancel, callback URL."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from models import Job, JobState
from tests.integration.test_intake_auth import (
    TICKET,
    Credentials,
    bearer,
    error_code,
    intake,
    intake_env,
    make_tenant,
    post_signed,
)
from worker.db import session_scope

__all__ = ["intake", "intake_env", "make_tenant"]


def set_state(job_id: str, state: JobState) -> None:
    with session_scope() as session:
        session.execute(update(Job).where(Job.id == uuid.UUID(job_id)).values(state=state))


def test_rate_limit_is_429_with_retry_after(
    intake: TestClient, make_tenant: Callable[..., Credentials]
) -> None:
    creds = make_tenant(intake_per_minute=2)

    statuses = [post_signed(intake, creds, TICKET).status_code for _ in range(2)]
    limited = post_signed(intake, creds, TICKET)

    assert statuses == [202, 202]
    assert limited.status_code == 429
    assert error_code(limited) == "rate_limited"
    assert 1 <= int(limited.headers["retry-after"]) <= 60


def test_rate_limit_is_per_tenant(
    intake: TestClient, make_tenant: Callable[..., Credentials]
) -> None:
    acme = make_tenant(intake_per_minute=1)
    other = make_tenant("other", intake_per_minute=1)

    assert post_signed(intake, acme, TICKET).status_code == 202
    assert post_signed(intake, other, TICKET).status_code == 202
    assert post_signed(intake, acme, TICKET).status_code == 429


def test_backpressure_is_429_until_jobs_leave_queue(
    intake: TestClient, make_tenant: Callable[..., Credentials]
) -> None:
    creds = make_tenant(max_queued_jobs=2)
    first = post_signed(intake, creds, TICKET).json()["id"]
    post_signed(intake, creds, TICKET)

    held = post_signed(intake, creds, TICKET)
    set_state(first, JobState.RUNNING)
    after_start = post_signed(intake, creds, TICKET)

    assert held.status_code == 429
    assert error_code(held) == "backpressure"
    assert held.headers["retry-after"] == "30"
    assert after_start.status_code == 202


def test_callback_url_is_stored_on_job(
    intake: TestClient, make_tenant: Callable[..., Credentials]
) -> None:
    creds = make_tenant()
    body = {**TICKET, "callback_url": "https://crm.example.com/hooks/sluice"}

    job_id = post_signed(intake, creds, body).json()["id"]
    read = intake.get(f"/v1/jobs/{job_id}", headers=bearer(creds)).json()

    assert read["callback_url"] == "https://crm.example.com/hooks/sluice"
    with session_scope() as session:
        job = session.get(Job, uuid.UUID(job_id))
        assert job is not None
        assert job.callback_url == "https://crm.example.com/hooks/sluice"


@pytest.mark.parametrize("url", ["ftp://crm.example.com/x", "/hooks/sluice", "https://"])
def test_invalid_callback_url_is_422(
    intake: TestClient, make_tenant: Callable[..., Credentials], url: str
) -> None:
    creds = make_tenant()

    response = post_signed(intake, creds, {**TICKET, "callback_url": url})

    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == "callback_url"


def submit_many(intake: TestClient, creds: Credentials, count: int) -> list[str]:
    return [post_signed(intake, creds, {**TICKET, "external_id": f"crm-{n}"}).json()["id"]
            for n in range(count)]


def test_list_pages_through_own_jobs_newest_first(
    intake: TestClient, make_tenant: Callable[..., Credentials]
) -> None:
    creds = make_tenant()
    other = make_tenant("other")
    created = submit_many(intake, creds, 5)
    submit_many(intake, other, 2)

    pages = []
    cursor = None
    for _ in range(5):
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = intake.get("/v1/jobs", params=params, headers=bearer(creds)).json()
        pages.append([item["id"] for item in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert [len(page) for page in pages] == [2, 2, 1]
    assert [job_id for page in pages for job_id in page] == list(reversed(created))


def test_list_filters_by_state_workflow_and_external_id(
    intake: TestClient, make_tenant: Callable[..., Credentials]
) -> None:
    creds = make_tenant()
    created = submit_many(intake, creds, 3)
    set_state(created[0], JobState.SUCCEEDED)

    def ids(**params: str) -> list[str]:
        response = intake.get("/v1/jobs", params=params, headers=bearer(creds))
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    assert ids(state="succeeded") == [created[0]]
    assert ids(external_id="crm-2") == [created[2]]
    assert len(ids(workflow="support_tickets")) == 3
    assert ids(workflow="invoices") == []


@pytest.mark.parametrize("params", [{"state": "done"}, {"cursor": "not-a-cursor"},
                                    {"limit": "0"}, {"limit": "101"}])
def test_list_rejects_invalid_query(
    intake: TestClient, make_tenant: Callable[..., Credentials], params: dict[str, str]
) -> None:
    creds = make_tenant()

    response = intake.get("/v1/jobs", params=params, headers=bearer(creds))

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"


def cancel(intake: TestClient, creds: Credentials, job_id: str) -> Any:
    return post_signed(intake, creds, b"", path=f"/v1/jobs/{job_id}/cancel")


def test_cancel_fails_queued_job(
    intake: TestClient, make_tenant: Callable[..., Credentials]
) -> None:
    creds = make_tenant()
    job_id = post_signed(intake, creds, TICKET).json()["id"]

    response = cancel(intake, creds, job_id)
    again = cancel(intake, creds, job_id)

    assert response.status_code == 200
    assert response.json()["state"] == "failed"
    assert response.json()["reason"] == "cancelled"
    assert again.status_code == 409
    assert error_code(again) == "job_not_cancellable"


def test_cancel_running_job_is_409(
    intake: TestClient, make_tenant: Callable[..., Credentials]
) -> None:
    creds = make_tenant()
    job_id = post_signed(intake, creds, TICKET).json()["id"]
    set_state(job_id, JobState.RUNNING)

    response = cancel(intake, creds, job_id)

    assert response.status_code == 409
    assert "running" in response.json()["error"]["message"]


def test_cancel_other_tenants_job_is_404(
    intake: TestClient, make_tenant: Callable[..., Credentials]
) -> None:
    acme = make_tenant()
    other = make_tenant("other")
    job_id = post_signed(intake, acme, TICKET).json()["id"]

    response = cancel(intake, other, job_id)

    assert response.status_code == 404
    with session_scope() as session:
        job = session.get(Job, uuid.UUID(job_id))
        assert job is not None and job.state == JobState.QUEUED


def test_cancel_needs_signature(
    intake: TestClient, make_tenant: Callable[..., Credentials]
) -> None:
    creds = make_tenant()
    job_id = post_signed(intake, creds, TICKET).json()["id"]

    response = intake.post(f"/v1/jobs/{job_id}/cancel", headers=bearer(creds))

    assert response.status_code == 401
    assert error_code(response) == "missing_signature"


def test_openapi_documents_intake(intake: TestClient) -> None:
    spec = intake.get("/openapi.json").json()
    submit = spec["paths"]["/v1/jobs"]["post"]

    assert set(spec["paths"]) >= {"/v1/jobs", "/v1/jobs/{job_id}", "/v1/jobs/{job_id}/cancel"}
    assert "get" in spec["paths"]["/v1/jobs"]
    assert {"401", "409", "429", "200", "202"} <= set(submit["responses"])
    example = submit["responses"]["401"]["content"]["application/json"]["example"]
    assert example["error"]["code"] == "invalid_signature"
    headers = {p["name"] for p in submit["parameters"] if p["in"] == "header"}
    assert headers >= {"webhook-id", "webhook-timestamp", "webhook-signature",
                       "Idempotency-Key"}
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
