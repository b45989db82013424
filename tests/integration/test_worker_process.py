"""A real Celery worker process runs jobs published through the API."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from models import Attempt, Job, JobState, LLMCall, TicketClassification
from worker.api import create_app
from worker.db import session_scope

SETTLED = {JobState.SUCCEEDED, JobState.NEEDS_REVIEW, JobState.FAILED}
TICKETS = [
    "I need to cancel the order I placed yesterday",
    "how do I get a refund for my purchase",
    "I cannot log in to my account, please reset my password",
    "where can I find the invoice for my last order",
    "I want to change the shipping address of my order",
    "please unsubscribe me from the newsletter",
]


@pytest.fixture
def worker_process(sluice_env: dict[str, str], tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    env = {**os.environ, **sluice_env, "SLUICE_DATA_DIR": str(tmp_path)}
    log = (tmp_path / "worker.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "worker", "worker", "--pool", "threads", "--concurrency", "4"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    yield process
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
    log.close()


def wait_settled(job_ids: list[uuid.UUID], timeout_s: float = 60) -> dict[uuid.UUID, JobState]:
    deadline = time.monotonic() + timeout_s
    while True:
        with session_scope() as session:
            states = dict(session.execute(
                select(Job.id, Job.state).where(Job.id.in_(job_ids))).all())
        if all(state in SETTLED for state in states.values()) or time.monotonic() > deadline:
            return states
        time.sleep(0.2)


def test_worker_process_runs_published_jobs(
    worker_process: subprocess.Popen[bytes], sluice_env: dict[str, str]
) -> None:
    with TestClient(create_app()) as api:
        job_ids = [
            uuid.UUID(api.post("/v1/jobs", json={
                "workflow": "support_tickets", "input": {"text": text}}).json()["id"])
            for text in TICKETS * 3
        ]

    states = wait_settled(job_ids)

    assert set(states.values()) <= SETTLED, states
    with session_scope() as session:
        succeeded = [j for j, s in states.items() if s == JobState.SUCCEEDED]
        records = session.scalar(select(func.count()).select_from(TicketClassification)
                                 .where(TicketClassification.job_id.in_(job_ids)))
        assert records == len(succeeded)
        assert len(succeeded) >= len(job_ids) // 2
        attempts = session.scalar(select(func.count()).select_from(Attempt)
                                  .where(Attempt.job_id.in_(job_ids)))
        assert attempts == len(job_ids)
        calls = session.scalar(select(func.count()).select_from(LLMCall)
                               .where(LLMCall.job_id.in_(job_ids), LLMCall.http_status == 200))
        assert calls >= len(job_ids)


def test_jobs_survive_a_flushed_broker(sluice_env: dict[str, str], tmp_path: Path) -> None:
    with TestClient(create_app()) as api:
        job_ids = [
            uuid.UUID(api.post("/v1/jobs", json={
                "workflow": "support_tickets", "input": {"text": text}}).json()["id"])
            for text in TICKETS
        ]
    redis.Redis.from_url(sluice_env["SLUICE_REDIS_URL"]).flushdb()

    env = {**os.environ, **sluice_env, "SLUICE_DATA_DIR": str(tmp_path),
           "SLUICE_STALLED_GRACE_S": "0.5", "SLUICE_RECONCILE_EVERY_S": "1"}
    log = (tmp_path / "worker.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "worker", "worker", "--concurrency", "2", "--beat"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        states = wait_settled(job_ids)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
        log.close()

    assert set(states.values()) <= SETTLED, (tmp_path / "worker.log").read_text()[-2000:]
    with session_scope() as session:
        attempts = session.scalar(select(func.count()).select_from(Attempt)
                                  .where(Attempt.job_id.in_(job_ids)))
    assert attempts == len(job_ids)


def test_prefork_children_run_jobs_with_their_own_connections(
    sluice_env: dict[str, str], tmp_path: Path
) -> None:
    with TestClient(create_app()) as api:
        job_ids = [
            uuid.UUID(api.post("/v1/jobs", json={
                "workflow": "support_tickets", "input": {"text": text}}).json()["id"])
            for text in TICKETS * 2
        ]
    env = {**os.environ, **sluice_env, "SLUICE_DATA_DIR": str(tmp_path)}
    log = (tmp_path / "worker.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "worker", "worker", "--pool", "prefork", "--concurrency", "2"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        states = wait_settled(job_ids)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
        log.close()

    assert set(states.values()) == {JobState.SUCCEEDED}
    with session_scope() as session:
        workers = set(session.scalars(select(Attempt.worker).where(Attempt.job_id.in_(job_ids))))
    pids = {name.split(":")[1] for name in workers if name}
    assert len(pids) == 2
