"""Fallbacks, breakers, escalation cost, cost ceilings and tenant budgets, end to end
through the pipeline with the real database and Redis and a scripted provider."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import redis
from sqlalchemy import select, update

from models import Attempt, Job, JobState, LLMCall, Tenant
from tests.support import FALLBACK_CONFIG, RoutedClient, submit, use_settings, write_config
from worker.breaker import CircuitBreaker
from worker.db import session_scope
from worker.errors import ProviderError
from worker.ledger import totals
from worker.pipeline.calls import Services
from worker.pipeline.run import run_job
from worker.ratelimit import RateLimiter
from worker.redis_client import client_url

TICKET = json.dumps({"category": "ORDER", "intent": "cancel_order", "priority": "normal",
                     "language": "en", "summary": "Customer wants to cancel an order."})
BAD_TICKET = TICKET.replace('"ORDER"', '"WEATHER"')
OPEN_AFTER = 2


def server_error(model: str) -> ProviderError:
    return ProviderError("boom", kind="server_error", transient=True, provider="simulator",
                         model=model, status=500)


def rejected(model: str) -> ProviderError:
    return ProviderError("bad key", kind="rejected", transient=False, provider="simulator",
                         model=model, status=401)


@pytest.fixture
def env(clean_db: str, clean_redis: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> Iterator[redis.Redis]:
    config = write_config(
        tmp_path, FALLBACK_CONFIG,
        {'simulated = true\n\n[providers.openai]':
         f'simulated = true\nbreaker = {{ failures = {OPEN_AFTER}, cooldown_s = 60 }}\n\n'
         '[providers.openai]',
         'kind = "ticket_classification"\nroute = ["sim-small", "sim-large"]\n'
         'categories = [\n    "ACCOUNT"':
         'kind = "ticket_classification"\nroute = ["sim-small", "sim-large"]\n'
         'fallbacks = { sim-small = ["backup-small"] }\nmax_cost_usd = "0.005"\n'
         'categories = [\n    "ACCOUNT"'})
    use_settings(monkeypatch, database_url=clean_db, redis_url=clean_redis, config_file=config)
    client = redis.Redis.from_url(client_url(clean_redis))
    yield client
    client.close()


def services(client: RoutedClient, connection: redis.Redis) -> Services:
    return Services(client=client, limiter=RateLimiter(connection),
                    breaker=CircuitBreaker(connection), sleep=lambda _: None, jitter=lambda: 0.0)


def route_log(job_id: object) -> list[dict[str, object]]:
    with session_scope() as session:
        query = select(Attempt.route_log).where(Attempt.job_id == job_id)
        return next(iter(session.scalars(query)))


def test_permanent_failure_falls_back_to_other_provider(env: redis.Redis) -> None:
    job_id = submit("support_tickets", {"text": "cancel my order"})
    client = RoutedClient({"sim-small": [rejected("sim-small")],
                           "backup-small": [(TICKET, "stop")]})

    assert run_job(job_id, services=services(client, env)).state == JobState.SUCCEEDED

    assert [r["model"] for r in client.requests] == ["sim-small", "backup-small"]
    events = [(e["event"], e.get("model")) for e in route_log(job_id)]
    assert ("provider_failed", "sim-small") in events
    assert ("fallback_used", "backup-small") in events


def test_failing_provider_trips_breaker_for_later_jobs(env: redis.Redis) -> None:
    first = submit("support_tickets", {"text": "cancel my order"})
    client = RoutedClient({"sim-small": [server_error("sim-small")] * OPEN_AFTER,
                           "backup-small": [(TICKET, "stop")] * 2})
    run_job(first, services=services(client, env))
    second = submit("support_tickets", {"text": "cancel my order"})

    assert run_job(second, services=services(client, env)).state == JobState.SUCCEEDED

    models = [r["model"] for r in client.requests]
    assert models == ["sim-small"] * OPEN_AFTER + ["backup-small", "backup-small"]
    assert ("skipped", "circuit_open") in [(e["event"], e.get("reason"))
                                           for e in route_log(second)]


def test_escalation_cost_is_in_the_ledger(env: redis.Redis, monkeypatch: pytest.MonkeyPatch,
                                          tmp_path: Path) -> None:
    job_id = submit("invoices", {"text": "Invoice 1 from Acme GmbH"})
    bad = json.dumps({"issuer": "Acme GmbH", "document_number": "1", "issue_date": "unknown",
                      "currency": "EUR", "total": "1.00", "tax": None, "line_items": []})
    good = bad.replace('"unknown"', '"2024-05-01"')
    client = RoutedClient({"sim-small": [(bad, "stop")] * 2, "sim-large": [(good, "stop")]})

    assert run_job(job_id, services=services(client, env)).state == JobState.SUCCEEDED

    with session_scope() as session:
        by_model = {row.key: row for row in totals(session, "model")}
        job = session.get(Job, job_id)
        assert job is not None
        assert set(by_model) == {"sim-small", "sim-large"}
        assert by_model["sim-small"].calls == 2
        assert by_model["sim-large"].cost_usd > by_model["sim-small"].cost_usd / 2
        assert job.cost_usd == sum(row.cost_usd for row in by_model.values())
        assert totals(session, "workflow")[0].key == "invoices"


def test_cost_ceiling_sends_job_to_review(env: redis.Redis) -> None:
    job_id = submit("support_tickets", {"text": "cancel my order"})
    client = RoutedClient({"sim-small": [(BAD_TICKET, "stop")] * 2,
                           "sim-large": [(TICKET, "stop")]})

    assert run_job(job_id, services=services(client, env)).state == JobState.NEEDS_REVIEW

    with session_scope() as session:
        job = session.get(Job, job_id)
        assert job is not None
        assert job.reason == "cost_ceiling"
    assert [r["model"] for r in client.requests] == ["sim-small", "sim-small"]


def test_budget_stop_holds_job_then_releases_it(env: redis.Redis) -> None:
    with session_scope() as session:
        session.execute(update(Tenant).where(Tenant.id == "default")
                        .values(daily_budget_usd=Decimal("0.000001")))
    job_id = submit("support_tickets", {"text": "cancel my order"})
    client = RoutedClient({"sim-small": [(TICKET, "stop")]})

    held = run_job(job_id, services=services(client, env))

    assert held.state == JobState.QUEUED
    assert held.retry_in_s is not None and held.retry_in_s > 1
    assert client.requests == []
    with session_scope() as session:
        job = session.get(Job, job_id)
        assert job is not None
        assert (job.state, job.reason, job.deferrals) == (JobState.QUEUED,
                                                          "budget_exceeded_daily", 1)
        session.execute(update(Tenant).where(Tenant.id == "default")
                        .values(daily_budget_usd=Decimal("10")))
        session.execute(update(Job).where(Job.id == job_id).values(not_before=None))

    assert run_job(job_id, services=services(client, env)).state == JobState.SUCCEEDED
    with session_scope() as session:
        calls = session.scalars(select(LLMCall).where(LLMCall.job_id == job_id)).all()
        assert len(calls) == 1


class SlowClient(RoutedClient):
    """Answers after a pause and records how many calls were in flight at once."""

    def __init__(self, answer: tuple[str, str]) -> None:
        super().__init__({"sim-small": [answer] * 10})
        self.in_flight = 0
        self.most_in_flight = 0
        self.lock = threading.Lock()

    def complete(self, *args: object, **kwargs: object) -> object:
        with self.lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        time.sleep(0.2)
        try:
            with self.lock:
                return super().complete(*args, **kwargs)  # type: ignore[arg-type]
        finally:
            with self.lock:
                self.in_flight -= 1


def test_max_concurrency_holds_across_threads(
    clean_db: str, clean_redis: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(tmp_path, "", {
        "simulated = true\n": "simulated = true\nlimits = { max_concurrency = 1 }\n"})
    use_settings(monkeypatch, database_url=clean_db, redis_url=clean_redis, config_file=config)
    connection = redis.Redis.from_url(client_url(clean_redis))
    client = SlowClient((TICKET, "stop"))
    job_ids = [submit("support_tickets", {"text": "cancel my order"}) for _ in range(3)]

    # Real sleeping: the waiting calls must see the slot come free in real time.
    real_time = Services(client=client, limiter=RateLimiter(connection),
                         breaker=CircuitBreaker(connection), jitter=lambda: 0.0)
    threads = [threading.Thread(target=run_job, args=(job_id,),
                                kwargs={"services": real_time}) for job_id in job_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert client.most_in_flight == 1
    with session_scope() as session:
        states = set(session.scalars(select(Job.state).where(Job.id.in_(job_ids))))
    assert states == {JobState.SUCCEEDED}
    connection.close()
