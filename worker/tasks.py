"""Celery tasks. They stay thin: take a job id, run the pipeline, map the outcome."""

from __future__ import annotations

import uuid

from celery import Task

from worker.celery_app import app
from worker.pipeline.run import run_job as run_attempt


@app.task(name="sluice.run_job", bind=True, max_retries=None)
def run_job(self: Task, job_id: str) -> None:
    """Run one attempt of a job; a job that must wait comes back after its delay."""
    outcome = run_attempt(uuid.UUID(job_id))
    if outcome.retry_in_s is not None:
        raise self.retry(countdown=outcome.retry_in_s)


def enqueue(job_id: uuid.UUID) -> None:
    run_job.delay(str(job_id))
