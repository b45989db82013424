"""Durable accept, cancel and redelivery through the API, with the real database and Redis."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, insert, select, update

from models import (
    Attempt,
    CallbackOutbox,
    IdempotencyKey,
    Job,
    JobState,
    OutboxState,
    Tenant,
    TicketClassification,
)
from models.base import utcnow
from tests.support import scripted
from worker import tasks
from worker.api import create_app
from worker.db import session_scope
from worker.pipeline.run import run_job

TICKET = json.dumps({"category": "ORDER", "intent": "cancel_order", "priority": "normal",
                     "language": "en", "summary": "Customer wants to cancel an order."})
BODY = {"workflow": "support_tickets", "input": {"text": "please cancel my order"}}


@pytest.fixture
def api(sluice_env: dict[str, str]) -> Iterator[TestClient]:
    with session_scope() as session:
        session.execute(update(Tenant).where(Tenant.id == "default")
                        .values(callback_url="https://crm.example.test/hooks/sluice"))
    client = TestClient(create_app())
    yield client
    with session_scope() as session:
        session.execute(update(Tenant).where(Tenant.id == "default").values(callback_url=None))


def outbox_rows(job_id: uuid.UUID) -> list[CallbackOutbox]:
    with session_scope() as session:
        return list(session.scalars(select(CallbackOutbox)
                                    .where(CallbackOutbox.job_id == job_id)))


def test_cancel_writes_a_failed_callback(api: TestClient) -> None:
    job_id = api.post("/v1/jobs", json=BODY).json()["id"]

    response = api.post(f"/v1/jobs/{job_id}/cancel")

    assert response.status_code == 200
    assert response.json()["reason"] == "cancelled"
    [row] = outbox_rows(uuid.UUID(job_id))
    assert row.event == "job.failed"


def test_redeliver_resets_callbacks_with_their_ids(api: TestClient) -> None:
    job_id = uuid.UUID(api.post("/v1/jobs", json=BODY).json()["id"])
    run_job(job_id, services=scripted([(TICKET, "stop")])[1])
    [row] = outbox_rows(job_id)
    with session_scope() as session:
        session.execute(update(CallbackOutbox).where(CallbackOutbox.id == row.id)
                        .values(state=OutboxState.DEAD))

    response = api.post(f"/v1/jobs/{job_id}/callbacks/redeliver")

    assert response.status_code == 200
    assert response.json()["redelivering"] == [row.webhook_id]
    [again] = outbox_rows(job_id)
    assert again.state == OutboxState.PENDING


def test_redeliver_without_callback_is_409(api: TestClient) -> None:
    job_id = api.post("/v1/jobs", json=BODY).json()["id"]

    response = api.post(f"/v1/jobs/{job_id}/callbacks/redeliver")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "no_callback"


def test_purge_forgets_old_idempotency_keys(api: TestClient) -> None:
    job_id = uuid.UUID(api.post("/v1/jobs", json=BODY).json()["id"])
    with session_scope() as session:
        session.execute(insert(IdempotencyKey).values(
            tenant_id="default", key="old", body_sha256="0" * 64, job_id=job_id,
            created_at=utcnow() - timedelta(days=8)))
        session.execute(insert(IdempotencyKey).values(
            tenant_id="default", key="fresh", body_sha256="0" * 64, job_id=job_id,
            created_at=utcnow() - timedelta(days=6)))

    assert tasks.purge_idempotency_keys_task() == 1

    with session_scope() as session:
        keys = set(session.scalars(select(IdempotencyKey.key)))
    assert keys == {"fresh"}


def test_job_accepted_while_publish_fails_completes_once(
    sluice_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def publish_dies(job_id: uuid.UUID) -> None:
        raise ConnectionError("broker went away between commit and publish")

    monkeypatch.setattr(tasks, "enqueue", publish_dies)
    with TestClient(create_app()) as client:
        accepted = client.post("/v1/jobs", json=BODY)
    assert accepted.status_code == 202
    job_id = uuid.UUID(accepted.json()["id"])

    env = {**os.environ, **sluice_env, "SLUICE_DATA_DIR": str(tmp_path),
           "SLUICE_STALLED_GRACE_S": "0.5", "SLUICE_RECONCILE_EVERY_S": "1"}
    with (tmp_path / "worker.log").open("wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "worker", "worker", "--concurrency", "2", "--beat"],
            env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with session_scope() as session:
                state = session.scalar(select(Job.state).where(Job.id == job_id))
            if state == JobState.SUCCEEDED:
                break
            time.sleep(0.2)
        # Give any duplicate publish time to show up before counting.
        time.sleep(2)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)

    assert state == JobState.SUCCEEDED, (tmp_path / "worker.log").read_text()[-2000:]
    with session_scope() as session:
        attempts = session.scalar(select(func.count()).select_from(Attempt)
                                  .where(Attempt.job_id == job_id))
        records = session.scalar(select(func.count()).select_from(TicketClassification)
                                 .where(TicketClassification.job_id == job_id))
    assert (attempts, records) == (1, 1)
