"""Rate limits shared by real worker processes against the simulator's enforcement."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from models import Attempt, Job, JobState
from tests.support import (
    ThreadedServer,
    start_worker,
    stop_worker,
    submit,
    use_settings,
    write_config,
)
from worker.db import session_scope
from worker.simulator import SimulatorSettings, create_app
from worker.tasks import enqueue

SETTLED = {JobState.SUCCEEDED, JobState.NEEDS_REVIEW, JobState.FAILED}
TEXTS = ["I want to cancel my order", "how do I get a refund", "reset my password please",
         "where is my invoice"]


@pytest.fixture
def limited_simulator(request: pytest.FixtureRequest) -> Iterator[ThreadedServer]:
    with ThreadedServer(create_app(SimulatorSettings(**request.param))) as server:
        yield server


def environment(clean_db: str, clean_redis: str, simulator: ThreadedServer, tmp_path: Path,
                monkeypatch: pytest.MonkeyPatch, limits_toml: str) -> dict[str, str]:
    replace = {"simulated = true\n": f"simulated = true\n{limits_toml}"} if limits_toml else {}
    config = write_config(tmp_path, "", replace)
    values = {"database_url": clean_db, "redis_url": clean_redis,
              "simulator_url": f"{simulator.url}/v1", "config_file": str(config),
              "data_dir": str(tmp_path)}
    use_settings(monkeypatch, **values)
    return {f"SLUICE_{k.upper()}": v for k, v in values.items()}


def run_jobs(env: dict[str, str], tmp_path: Path, count: int, concurrency: int,
             timeout_s: float = 90) -> dict[uuid.UUID, JobState]:
    job_ids = [submit("support_tickets", {"text": TEXTS[i % len(TEXTS)]}) for i in range(count)]
    workers = [start_worker(env, tmp_path / f"worker-{i}.log", concurrency) for i in range(2)]
    try:
        for job_id in job_ids:
            enqueue(job_id)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with session_scope() as session:
                states = dict(session.execute(select(Job.id, Job.state)
                                              .where(Job.id.in_(job_ids))).all())
            if set(states.values()) <= SETTLED:
                break
            time.sleep(0.2)
    finally:
        for worker in workers:
            stop_worker(worker)
    return states


def requests_seen(simulator: ThreadedServer) -> list[dict[str, Any]]:
    return list(httpx.get(f"{simulator.url}/_simulator/requests").json())


def worker_processes(job_ids: list[uuid.UUID]) -> set[str]:
    with session_scope() as session:
        names = session.scalars(select(Attempt.worker).where(Attempt.job_id.in_(job_ids)))
        return {name.rsplit(":", 1)[0] for name in names if name}


@pytest.mark.parametrize("limited_simulator", [{"rpm": 120}], indirect=True)
def test_two_workers_stay_inside_a_shared_limit(
    clean_db: str, clean_redis: str, limited_simulator: ThreadedServer, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = environment(clean_db, clean_redis, limited_simulator, tmp_path, monkeypatch,
                      "limits = { requests_per_minute = 120 }\n")

    states = run_jobs(env, tmp_path, count=16, concurrency=4)

    assert set(states.values()) == {JobState.SUCCEEDED}
    outcomes = [entry["outcome"] for entry in requests_seen(limited_simulator)]
    assert outcomes.count("ok") == 16
    assert not [o for o in outcomes if o.startswith("rate_limited")]
    assert len(worker_processes(list(states))) == 2


@pytest.mark.parametrize("limited_simulator", [{"rpm": 30}], indirect=True)
def test_429_pauses_the_provider_for_every_worker(
    clean_db: str, clean_redis: str, limited_simulator: ThreadedServer, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Sluice is not told the limit, so only the provider's 429 can slow it down.
    env = environment(clean_db, clean_redis, limited_simulator, tmp_path, monkeypatch, "")

    states = run_jobs(env, tmp_path, count=6, concurrency=1)

    assert set(states.values()) == {JobState.SUCCEEDED}
    entries = sorted(requests_seen(limited_simulator), key=lambda e: e["time"])
    rejected = [e for e in entries if e["status"] == 429]
    assert rejected, "the test needs at least one 429 to check the pause"
    in_flight_s = 0.2
    for rejection in rejected:
        paused_until = rejection["time"] + rejection["retry_after_ms"] / 1000
        early = [e for e in entries
                 if rejection["time"] + in_flight_s < e["time"] < paused_until - 0.05]
        assert early == [], (rejection, early)
    assert len(worker_processes(list(states))) == 2
