"""The intake API over HTTP (in-process ASGI) with the real database and broker."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator

import pytest
import redis
from fastapi.testclient import TestClient

from models import Job, JobState
from tests.support import scripted, use_settings
from worker import tasks
from worker.api import create_app
from worker.db import session_scope
from worker.pipeline.run import run_job

TICKET = {"workflow": "support_tickets", "input": {"text": "Where is my refund?"},
          "external_id": "crm-1"}


@pytest.fixture
def broker_env(
    clean_db: str, clean_redis: str, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    use_settings(monkeypatch, database_url=clean_db, redis_url=clean_redis)
    return {"SLUICE_REDIS_URL": clean_redis}


@pytest.fixture
def api(broker_env: dict[str, str]) -> Iterator[TestClient]:
    with TestClient(create_app()) as client:
        yield client


def queued_messages(redis_url: str) -> list[dict[str, object]]:
    client = redis.Redis.from_url(redis_url)
    raw = client.lrange("sluice", 0, -1)
    client.close()
    return [json.loads(item) for item in raw]


def test_accepted_job_is_stored_before_202(api: TestClient, broker_env: dict[str, str]) -> None:
    response = api.post("/v1/jobs", json=TICKET)

    assert response.status_code == 202
    job_id = uuid.UUID(response.json()["id"])
    assert response.json()["state"] == "queued"
    with session_scope() as session:
        job = session.get(Job, job_id)
        assert job is not None
        assert job.state == JobState.QUEUED
        assert job.input == {"text": "Where is my refund?", "subject": None}
        assert job.external_id == "crm-1"


def test_task_message_carries_only_the_job_id(
    api: TestClient, broker_env: dict[str, str]
) -> None:
    job_id = api.post("/v1/jobs", json=TICKET).json()["id"]

    [message] = queued_messages(broker_env["SLUICE_REDIS_URL"])
    body = json.loads(base64.b64decode(message["body"]))  # type: ignore[arg-type]
    assert body[0] == [job_id]
    assert body[1] == {}
    assert "refund" not in json.dumps(message).lower()


def test_unknown_workflow_is_named(api: TestClient) -> None:
    response = api.post("/v1/jobs", json={**TICKET, "workflow": "tickets"})

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "unknown_workflow"
    assert error["details"][0]["field"] == "workflow"
    assert "support_tickets" in error["message"]


def test_invalid_input_names_the_field(api: TestClient) -> None:
    response = api.post("/v1/jobs", json={**TICKET, "input": {"txt": "hello"}})

    assert response.status_code == 422
    fields = [d["field"] for d in response.json()["error"]["details"]]
    assert "input.text" in fields
    assert "input.txt" in fields


def test_missing_workflow_is_named(api: TestClient) -> None:
    response = api.post("/v1/jobs", json={"input": {"text": "hi"}})

    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == "workflow"


def test_oversized_body_is_413(api: TestClient) -> None:
    body = {**TICKET, "input": {"text": "x" * 300_000}}
    response = api.post("/v1/jobs", json=body)

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_unknown_job_is_404(api: TestClient) -> None:
    response = api.get(f"/v1/jobs/{uuid.uuid4()}")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "job_not_found"


def test_finished_job_shows_its_record(api: TestClient) -> None:
    job_id = uuid.UUID(api.post("/v1/jobs", json=TICKET).json()["id"])
    answer = json.dumps({"category": "REFUND", "intent": "track_refund", "priority": "normal",
                         "language": "en", "summary": "Asks where the refund is."})
    run_job(job_id, services=scripted([(answer, "stop")])[1])

    body = api.get(f"/v1/jobs/{job_id}").json()

    assert body["state"] == "succeeded"
    assert body["result"]["category"] == "REFUND"
    assert body["attempts"] == 1
    assert body["review"] is None


def test_job_stays_received_when_publishing_fails(
    api: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broker_down(job_id: uuid.UUID) -> None:
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(tasks, "enqueue", broker_down)
    response = api.post("/v1/jobs", json=TICKET)

    assert response.status_code == 202
    assert response.json()["state"] == "received"
    with session_scope() as session:
        job = session.get(Job, uuid.UUID(response.json()["id"]))
        assert job is not None and job.state == JobState.RECEIVED


def test_openapi_documents_the_job_endpoints(api: TestClient) -> None:
    paths = api.get("/openapi.json").json()["paths"]
    assert set(paths) >= {"/v1/jobs", "/v1/jobs/{job_id}"}


def test_malformed_json_is_400_with_the_fix(api: TestClient) -> None:
    response = api.post("/v1/jobs", content=b'{"workflow": "support_tickets",',
                        headers={"content-type": "application/json"})

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_json"
    assert "not valid JSON" in error["message"]


def test_non_json_content_type_is_415(api: TestClient) -> None:
    response = api.post("/v1/jobs", content=b"workflow=support_tickets",
                        headers={"content-type": "text/plain"})

    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"
    assert "application/json" in response.json()["error"]["message"]


def test_oversized_chunked_body_is_413(api: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"workflow": "support_tickets", "input": {"text": "'
        for _ in range(300):
            yield b"x" * 1000
        yield b'"}}'

    response = api.post("/v1/jobs", content=chunks(),
                        headers={"content-type": "application/json"})

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_small_chunked_body_is_accepted(api: TestClient) -> None:
    body = json.dumps(TICKET).encode()
    response = api.post("/v1/jobs", content=iter([body[:20], body[20:]]),
                        headers={"content-type": "application/json"})

    assert response.status_code == 202


def test_new_job_cost_reads_as_plain_zero(api: TestClient) -> None:
    job_id = api.post("/v1/jobs", json=TICKET).json()["id"]

    assert api.get(f"/v1/jobs/{job_id}").json()["cost_usd"] == "0"


def test_invalid_request_message_gives_reasons(api: TestClient) -> None:
    response = api.post("/v1/jobs", json={"workflow": "support_tickets", "input": "text"})

    assert response.status_code == 422
    assert "input:" in response.json()["error"]["message"]
