"""Celery tasks. They stay thin: take a job id, run the pipeline, map the outcome."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from celery import Task

from models.base import utcnow
from worker.callbacks.delivery import deliver_due
from worker.celery_app import VISIBILITY_TIMEOUT_S, app
from worker.db import session_scope
from worker.pipeline import store
from worker.pipeline.run import run_job as run_attempt
from worker.settings import get_settings

logger = logging.getLogger(__name__)


# Longest countdown given to one task message. A worker holds a message with a countdown
# unacknowledged until it runs, and Redis hands unacknowledged messages to another worker
# after the visibility timeout; staying far below it means no second delivery. A job that
# must wait longer is simply not due when the message arrives and is sent back again.
MAX_COUNTDOWN_S = VISIBILITY_TIMEOUT_S / 12


def countdown_for(delay_s: float) -> float:
    return max(0.0, min(delay_s, MAX_COUNTDOWN_S))


@app.task(name="sluice.run_job", bind=True, max_retries=None)
def run_job(self: Task, job_id: str) -> None:
    """Run one attempt of a job; a job that must wait comes back after its delay."""
    outcome = run_attempt(uuid.UUID(job_id))
    if outcome.retry_in_s is not None:
        raise self.retry(countdown=countdown_for(outcome.retry_in_s))


@app.task(name="sluice.requeue_stalled")
def requeue_stalled_task() -> int:
    """Periodic: publish jobs that lost their task (Redis flushed, worker killed)."""
    return requeue_stalled(get_settings().stalled_grace_s)


@app.task(name="sluice.deliver_callbacks")
def deliver_callbacks_task() -> int:
    """Periodic: send due result callbacks; return how many were delivered."""
    return deliver_due().delivered


def enqueue(job_id: uuid.UUID) -> None:
    run_job.delay(str(job_id))


def publish(job_id: uuid.UUID) -> bool:
    """Publish a committed job's task and mark it queued; return False if the broker failed.

    On failure the job keeps its state, and the periodic `sluice.requeue_stalled` task
    publishes it once it has waited `stalled_grace_s`.
    """
    try:
        enqueue(job_id)
    except Exception:
        logger.exception("publishing job failed; the stalled-job requeue will publish it",
                         extra={"action": "job.publish_failed", "job_id": str(job_id)})
        return False
    with session_scope() as session:
        store.mark_queued(session, job_id)
    return True


def requeue_stalled(grace_s: float) -> int:
    with session_scope() as session:
        job_ids = store.stalled_jobs(session, grace_s)
    for job_id in job_ids:
        enqueue(job_id)
    if job_ids:
        logger.info("requeued stalled jobs", extra={"action": "job.requeued",
                                                    "count": len(job_ids)})
    return len(job_ids)


@app.task(name="sluice.purge_idempotency_keys")
def purge_idempotency_keys_task() -> int:
    """Periodic: forget idempotency keys older than the retention (7 days or more)."""
    from worker.api.idempotency import purge_idempotency_keys

    cutoff = utcnow() - timedelta(days=get_settings().idempotency_retention_days)
    with session_scope() as session:
        return purge_idempotency_keys(session, cutoff)
