"""SIGTERM to a worker mid-run loses no job and duplicates no result."""

from __future__ import annotations

import signal
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select

from models import Attempt, Job, JobState, LLMCall, TicketClassification
from tests.support import ThreadedServer, start_worker, stop_worker, submit, use_settings
from worker.db import session_scope
from worker.simulator import SimulatorSettings, create_app
from worker.tasks import enqueue

TEXTS = ["I want to cancel my order", "how do I get a refund", "reset my password please",
         "where is my invoice"]


def count(model: type, job_ids: list[uuid.UUID]) -> int:
    with session_scope() as session:
        return int(session.scalar(select(func.count()).select_from(model)
                                  .where(model.job_id.in_(job_ids))) or 0)


def states(job_ids: list[uuid.UUID]) -> dict[uuid.UUID, JobState]:
    with session_scope() as session:
        return dict(session.execute(select(Job.id, Job.state).where(Job.id.in_(job_ids))).all())


def wait_for(condition: object, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def test_sigterm_mid_run_loses_and_duplicates_nothing(
    sluice_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ThreadedServer(create_app(SimulatorSettings(latency_ms=1500))) as slow:
        env = {**sluice_env, "SLUICE_SIMULATOR_URL": f"{slow.url}/v1",
               "SLUICE_DATA_DIR": str(tmp_path)}
        use_settings(monkeypatch, simulator_url=f"{slow.url}/v1")
        job_ids = [submit("support_tickets", {"text": TEXTS[i % 4]}) for i in range(12)]
        for job_id in job_ids:
            enqueue(job_id)

        first = start_worker(env, tmp_path / "first.log", 4)
        wait_for(lambda: JobState.RUNNING in states(job_ids).values(), 30)
        first.send_signal(signal.SIGTERM)
        first.wait(60)
        running_after_stop = [j for j, s in states(job_ids).items() if s == JobState.RUNNING]

        second = start_worker(env, tmp_path / "second.log", 4)
        try:
            wait_for(lambda: set(states(job_ids).values()) == {JobState.SUCCEEDED}, 90)
        finally:
            stop_worker(second)

    assert first.returncode == 0
    assert running_after_stop == []
    assert count(TicketClassification, job_ids) == len(job_ids)
    assert count(Attempt, job_ids) == len(job_ids)
    assert count(LLMCall, job_ids) == len(job_ids)
    first_log = (tmp_path / "first.log").read_text()
    assert "warm shutdown" in first_log.lower()
