"""Metrics read over HTTP from a real worker process and from the API after real jobs."""

from __future__ import annotations

import socket
import time
import uuid
from pathlib import Path

import httpx
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from models import Job, JobState
from tests.support import start_worker, stop_worker
from worker.api import create_app
from worker.db import session_scope

TEXTS = ["I want to cancel my order", "how do I get a refund", "reset my password please"]


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text) for sample in family.samples
    }


def value(metrics: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str,
          **labels: str) -> float:
    """Sum the samples of `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, sample_labels), v in metrics.items()
               if n == name and wanted <= sample_labels)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until_settled(job_ids: list[uuid.UUID], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with session_scope() as session:
            states = set(session.scalars(select(Job.state).where(Job.id.in_(job_ids))))
        if states == {JobState.SUCCEEDED}:
            return
        time.sleep(0.2)
    raise AssertionError(f"jobs did not all succeed: {states}")


def test_worker_and_api_export_what_happened(
    sluice_env: dict[str, str], tmp_path: Path
) -> None:
    port = free_port()
    worker = start_worker({**sluice_env, "SLUICE_DATA_DIR": str(tmp_path),
                           "SLUICE_WORKER_METRICS_PORT": str(port)},
                          tmp_path / "worker.log", 2)
    try:
        with TestClient(create_app()) as api:
            before = samples(api.get("/metrics").text)
            job_ids = [uuid.UUID(api.post("/v1/jobs", json={
                "workflow": "support_tickets", "input": {"text": text}}).json()["id"])
                for text in TEXTS]
            wait_until_settled(job_ids)
            after = samples(api.get("/metrics").text)
        worker_url = f"http://127.0.0.1:{port}"
        exported = samples(httpx.get(f"{worker_url}/metrics").text)
        health = httpx.get(f"{worker_url}/healthz").status_code
        ready = httpx.get(f"{worker_url}/readyz").status_code
    finally:
        stop_worker(worker)

    assert health == 200
    assert ready == 200
    assert value(exported, "sluice_jobs_finished_total", workflow="support_tickets",
                 state="succeeded") == 3
    assert value(exported, "sluice_job_duration_seconds_count", state="succeeded") == 3
    assert value(exported, "sluice_llm_requests_total", outcome="ok") == 3
    assert value(exported, "sluice_llm_tokens_total", kind="prompt") > 0
    assert value(exported, "sluice_llm_cost_usd_total", workflow="support_tickets") > 0
    assert value(exported, "sluice_llm_latency_seconds_count", model="sim-small") == 3

    assert value(after, "sluice_jobs", state="succeeded", workflow="support_tickets") == 3
    intake_before = value(before, "sluice_intake_requests_total", status="202")
    assert value(after, "sluice_intake_requests_total", status="202") - intake_before == 3
    assert value(after, "sluice_queue_depth", queue="sluice") == 0
    assert value(after, "sluice_review_oldest_age_seconds") == 0
