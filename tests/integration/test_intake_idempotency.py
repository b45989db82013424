"""Idempotent intake: repeated deliveries return the first job and never make a second."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from models import IdempotencyKey, Job
from models.base import utcnow
from tests.integration.test_intake_auth import (
    TICKET,
    Credentials,
    encode,
    error_code,
    intake,
    intake_env,
    make_tenant,
    post_signed,
    signed_headers,
)
from tests.support import ThreadedServer
from worker.api import app as app_module
from worker.api import create_app
from worker.api.idempotency import purge_idempotency_keys
from worker.db import session_scope

__all__ = ["intake", "intake_env", "make_tenant"]


def job_count(tenant_id: str) -> int:
    with session_scope() as session:
        return session.scalar(select(func.count()).select_from(Job)
                              .where(Job.tenant_id == tenant_id)) or 0


def test_same_key_and_body_returns_first_job(
    intake: TestClient, make_tenant: Callable[..., Credentials]
) -> None:
    creds = make_tenant()
    raw = encode(TICKET)

    first = intake.post("/v1/jobs", content=raw, headers={
        **signed_headers(creds, raw), "idempotency-key": "order-1234"})
    second = intake.post("/v1/jobs", content=raw, headers={
        **signed_headers(creds, raw), "idempotency-key": "order-1234"})

    assert first.status_code == 202
    assert second.status_code == 200
    assert second.json()["id"] == first.json()["id"]
    assert set(second.json()) == set(first.json())
    assert job_count("acme") == 1


def test_replayed_delivery_creates_no_job(
    intake: TestClient, make_tenant: Callable[..., Credentials]
) -> None:
    creds = make_tenant()
    raw = encode(TICKET)
    headers = signed_headers(creds, raw)

    first = intake.post("/v1/jobs", content=raw, headers=headers)
    replay = intake.post("/v1/jobs", content=raw, headers=headers)

    assert first.status_code == 202
    assert replay.status_code == 200
    assert replay.json()["id"] == first.json()["id"]
    assert job_count("acme") == 1


def test_same_key_other_body_is_409(
    intake: TestClient, make_tenant: Callable[..., Credentials]
) -> None:
    creds = make_tenant()

    first = post_signed(intake, creds, TICKET, msg_id="msg_same")
    changed = post_signed(intake, creds, {**TICKET, "external_id": "crm-2"}, msg_id="msg_same")

    assert first.status_code == 202
    assert changed.status_code == 409
    assert error_code(changed) == "idempotency_conflict"
    assert "different request body" in changed.json()["error"]["message"]
    assert job_count("acme") == 1


def test_keys_are_scoped_per_tenant(
    intake: TestClient, make_tenant: Callable[..., Credentials]
) -> None:
    acme = make_tenant()
    other = make_tenant("other")

    first = post_signed(intake, acme, TICKET, msg_id="msg_shared")
    second = post_signed(intake, other, TICKET, msg_id="msg_shared")

    assert first.status_code == 202
    assert second.status_code == 202
    assert first.json()["id"] != second.json()["id"]


def test_overlong_key_is_422(
    intake: TestClient, make_tenant: Callable[..., Credentials]
) -> None:
    creds = make_tenant()
    raw = encode(TICKET)

    response = intake.post("/v1/jobs", content=raw, headers={
        **signed_headers(creds, raw), "idempotency-key": "k" * 256})

    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == "Idempotency-Key"


@pytest.mark.parametrize("precheck", [True, False], ids=["lookup-first", "insert-race"])
def test_concurrent_identical_deliveries_make_one_job(
    intake_env: None, make_tenant: Callable[..., Credentials],
    monkeypatch: pytest.MonkeyPatch, precheck: bool,
) -> None:
    if not precheck:
        # Skip the read before the insert, so all 50 requests meet at the unique key.
        monkeypatch.setattr(app_module, "find_job", lambda *_: None)
    creds = make_tenant()
    raw = encode(TICKET)
    headers = signed_headers(creds, raw)

    with ThreadedServer(create_app()) as server, httpx.Client(
        base_url=server.url, timeout=30, limits=httpx.Limits(max_connections=50)
    ) as client, ThreadPoolExecutor(max_workers=50) as pool:
        responses = list(pool.map(
            lambda _: client.post("/v1/jobs", content=raw, headers=headers), range(50)))

    statuses = Counter(response.status_code for response in responses)
    assert statuses == {202: 1, 200: 49}
    assert len({response.json()["id"] for response in responses}) == 1
    assert job_count("acme") == 1


def test_purge_removes_only_old_keys(
    intake: TestClient, make_tenant: Callable[..., Credentials]
) -> None:
    creds = make_tenant()
    post_signed(intake, creds, TICKET, msg_id="msg_old")
    post_signed(intake, creds, TICKET, msg_id="msg_new")
    with session_scope() as session:
        session.execute(update(IdempotencyKey).where(IdempotencyKey.key == "msg_old")
                        .values(created_at=utcnow() - timedelta(days=8)))

    with session_scope() as session:
        purged = purge_idempotency_keys(session, utcnow() - timedelta(days=7))
    with session_scope() as session:
        left = list(session.scalars(select(IdempotencyKey.key)))

    assert purged == 1
    assert left == ["msg_new"]
