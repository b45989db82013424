"""`/metrics` of the API: its own counters plus gauges read from Postgres and Redis."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from models import Job, ReviewItem, ReviewState
from models.base import utcnow
from worker import metrics
from worker.breaker import KEY_PREFIX as BREAKER_PREFIX
from worker.db import session_scope
from worker.redis_client import get_redis

logger = logging.getLogger(__name__)

QUEUE_NAME = "sluice"


class StateCollector(Collector):
    """Gauges computed at scrape time, so every API replica reports the same truth."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            yield from self._from_database()
        except Exception:
            logger.exception("metrics: reading Postgres failed", extra={"action": "metrics.failed"})
        try:
            yield from self._from_redis()
        except Exception:
            logger.exception("metrics: reading Redis failed", extra={"action": "metrics.failed"})

    def _from_database(self) -> Iterator[GaugeMetricFamily]:
        jobs = GaugeMetricFamily("sluice_jobs", "Jobs in each state.", labels=["state", "workflow"])
        backlog = GaugeMetricFamily("sluice_review_backlog", "Open review items.",
                                    labels=["workflow", "reason"])
        oldest = GaugeMetricFamily("sluice_review_oldest_age_seconds",
                                   "Age of the oldest open review item.")
        with session_scope() as session:
            by_state = select(Job.state, Job.workflow, func.count()).group_by(
                Job.state, Job.workflow)
            for state, workflow, count in session.execute(by_state):
                jobs.add_metric([state.value, workflow], count)
            open_items = (select(Job.workflow, ReviewItem.reason, func.count(),
                                 func.min(ReviewItem.created_at))
                          .join(Job, Job.id == ReviewItem.job_id)
                          .where(ReviewItem.state == ReviewState.OPEN)
                          .group_by(Job.workflow, ReviewItem.reason))
            first_created = None
            for workflow, reason, count, created in session.execute(open_items):
                backlog.add_metric([workflow, reason], count)
                first_created = created if first_created is None else min(first_created, created)
        age_s = (utcnow() - first_created).total_seconds() if first_created else 0.0
        oldest.add_metric([], age_s)
        yield from (jobs, backlog, oldest)

    def _from_redis(self) -> Iterator[GaugeMetricFamily]:
        client: Any = get_redis()
        depth = GaugeMetricFamily("sluice_queue_depth", "Task messages waiting in Redis.",
                                  labels=["queue"])
        depth.add_metric([QUEUE_NAME], client.llen(QUEUE_NAME))
        circuit = GaugeMetricFamily("sluice_circuit_open",
                                    "1 while a provider's circuit breaker is open.",
                                    labels=["provider"])
        for key in client.scan_iter(match=BREAKER_PREFIX + "*:open"):
            name = key.decode() if isinstance(key, bytes) else key
            circuit.add_metric([name[len(BREAKER_PREFIX):-len(":open")]], 1)
        yield from (depth, circuit)


def install_metrics(app: FastAPI) -> None:
    registry = CollectorRegistry()
    registry.register(metrics.INTAKE_REQUESTS)
    registry.register(StateCollector())

    @app.middleware("http")
    async def count_intake(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        if request.url.path.startswith("/v1/"):
            metrics.INTAKE_REQUESTS.labels(str(response.status_code)).inc()
        return response

    @app.get("/metrics", include_in_schema=False)
    def serve_metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
