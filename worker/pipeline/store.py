"""Every statement that changes a job's state.

Transitions are compare-and-set updates (`WHERE state = ...`), so two workers that receive
the same task cannot both run it. A worker whose lease expired cannot finish a job that
another worker took over, because its final update matches no row and it writes nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from models import Attempt, Job, JobState, LLMCall, ReviewItem, ReviewState
from models.base import utcnow

CLAIMABLE = (JobState.RECEIVED, JobState.QUEUED)


@dataclass(frozen=True)
class Claim:
    """The right to run one attempt of a job until `lease_expires_at`."""

    job_id: uuid.UUID
    attempt_id: uuid.UUID
    attempt: int


@dataclass(frozen=True)
class NotClaimed:
    """Why a delivered task does not run: the job is settled, owned, or not yet due."""

    state: JobState | None
    wait_s: float = 0.0
    attempts_exhausted: bool = False


def create_job(
    session: Session, tenant_id: str, workflow: str, job_input: dict[str, Any],
    external_id: str | None,
) -> Job:
    job = Job(tenant_id=tenant_id, workflow=workflow, input=job_input, external_id=external_id)
    session.add(job)
    session.flush()
    return job


def mark_queued(session: Session, job_id: uuid.UUID) -> None:
    """Record that the task was published; a worker may already have claimed the job."""
    now = utcnow()
    session.execute(
        update(Job)
        .where(Job.id == job_id, Job.state == JobState.RECEIVED)
        .values(state=JobState.QUEUED, queued_at=now, updated_at=now)
    )


def claim(
    session: Session, job_id: uuid.UUID, worker: str, lease_s: int, max_attempts: int
) -> Claim | NotClaimed:
    """Start a new attempt if the job is waiting, or running under an expired lease."""
    now = utcnow()
    claimable = or_(
        Job.state.in_(CLAIMABLE),
        (Job.state == JobState.RUNNING) & (Job.lease_expires_at < now),
    )
    due = or_(Job.not_before.is_(None), Job.not_before <= now)
    row = session.execute(
        update(Job)
        .where(Job.id == job_id, claimable, due,
               Job.attempt_count - Job.deferrals < max_attempts)
        .values(
            state=JobState.RUNNING,
            reason=None,
            attempt_count=Job.attempt_count + 1,
            lease_expires_at=now + timedelta(seconds=lease_s),
            started_at=func.coalesce(Job.started_at, now),
            updated_at=now,
            not_before=None,
        )
        .returning(Job.attempt_count)
    ).first()
    if row is None:
        return _why_not_claimed(session, job_id, now, max_attempts)

    attempt = Attempt(job_id=job_id, number=row.attempt_count, worker=worker, started_at=now)
    session.add(attempt)
    session.flush()
    return Claim(job_id, attempt.id, attempt.number)


def _why_not_claimed(
    session: Session, job_id: uuid.UUID, now: datetime, max_attempts: int
) -> NotClaimed:
    job = session.get(Job, job_id)
    if job is None:
        return NotClaimed(None)
    if job.not_before is not None and job.not_before > now and job.state in CLAIMABLE:
        return NotClaimed(job.state, wait_s=(job.not_before - now).total_seconds())
    lease_over = job.state == JobState.RUNNING and (
        job.lease_expires_at is None or job.lease_expires_at < now
    )
    failed = job.attempt_count - job.deferrals
    exhausted = failed >= max_attempts and (job.state in CLAIMABLE or lease_over)
    return NotClaimed(job.state, attempts_exhausted=exhausted)


def add_llm_call(session: Session, call: LLMCall) -> None:
    """Store a call and add its price to the job, whatever the attempt does next."""
    session.add(call)
    session.execute(
        update(Job).where(Job.id == call.job_id).values(cost_usd=Job.cost_usd + call.cost_usd)
    )


def _owned(claim: Claim) -> Any:
    return (Job.id == claim.job_id) & (Job.state == JobState.RUNNING) & (
        Job.attempt_count == claim.attempt
    )


def finish(
    session: Session, claim: Claim, state: JobState, outcome: str, reason: str | None,
    detail: str | None = None, route_log: list[dict[str, Any]] | None = None,
) -> bool:
    """Move an owned job to a settled state and close the attempt; False if not owned."""
    now = utcnow()
    result = session.execute(
        update(Job)
        .where(_owned(claim))
        .values(state=state, reason=reason, finished_at=now, updated_at=now,
                lease_expires_at=None)
        .returning(Job.id)
    ).first()
    if result is None:
        return False
    _close_attempt(session, claim, outcome, reason, detail, now, route_log)
    return True


def requeue(
    session: Session, claim: Claim, reason: str, delay_s: float, detail: str,
    route_log: list[dict[str, Any]] | None = None, *, deferred: bool = False,
) -> bool:
    """Give the job back to the queue, due again after `delay_s`; False if not owned.

    A deferred attempt (rate limit, spent budget) waited rather than failed, so it does
    not count against max_attempts, and the job's reason says what it waits for.
    """
    now = utcnow()
    values: dict[str, Any] = {
        "state": JobState.QUEUED, "reason": reason if deferred else None, "updated_at": now,
        "lease_expires_at": None, "not_before": now + timedelta(seconds=delay_s),
    }
    if deferred:
        values["deferrals"] = Job.deferrals + 1
    result = session.execute(
        update(Job).where(_owned(claim)).values(**values).returning(Job.id)
    ).first()
    if result is None:
        return False
    outcome = "deferred" if deferred else "retry"
    _close_attempt(session, claim, outcome, reason, detail, now, route_log)
    return True


def settle_exhausted(session: Session, job_id: uuid.UUID, reason: str) -> bool:
    """Send a job whose attempts all died (worker lost) to review instead of looping."""
    now = utcnow()
    job = session.execute(
        select(Job).where(Job.id == job_id).with_for_update()
    ).scalar_one_or_none()
    if job is None or job.state not in (*CLAIMABLE, JobState.RUNNING):
        return False
    job.state = JobState.NEEDS_REVIEW
    job.reason = reason
    job.finished_at = job.updated_at = now
    job.lease_expires_at = None
    session.add(ReviewItem(job_id=job_id, reason=reason, errors=[], raw_output=None))
    return True


def _close_attempt(
    session: Session, claim: Claim, outcome: str, reason: str | None, detail: str | None,
    now: datetime, route_log: list[dict[str, Any]] | None = None,
) -> None:
    session.execute(
        update(Attempt)
        .where(Attempt.id == claim.attempt_id)
        .values(outcome=outcome, reason=reason, detail=detail, finished_at=now,
                route_log=route_log or [])
    )


def budget_start(session: Session, job_id: uuid.UUID) -> datetime | None:
    """Return when the job's request and cost budgets restarted: its last reviewer retry.

    A reviewer who sends a job back to another model asks for new calls, which must not be
    refused because of what the earlier runs spent.
    """
    return session.scalar(select(func.max(ReviewItem.resolved_at)).where(
        ReviewItem.job_id == job_id, ReviewItem.state == ReviewState.RETRIED))


def spent_since(session: Session, job_id: uuid.UUID,
                since: datetime | None) -> tuple[int, Decimal]:
    """Return the provider requests and their cost for the job since `since` (or ever)."""
    query = select(func.count(), func.coalesce(func.sum(LLMCall.cost_usd), 0)).where(
        LLMCall.job_id == job_id)
    if since is not None:
        query = query.where(LLMCall.created_at >= since)
    requests, cost = session.execute(query).one()
    return int(requests), Decimal(cost)



def stalled_jobs(session: Session, grace_s: float) -> list[uuid.UUID]:
    """Return jobs that should be running but that no live task seems to carry.

    These are jobs waiting in received or queued for `grace_s` past the time they became
    due, and running jobs whose lease expired (their worker died). Publishing one of them
    twice is harmless, because only one delivery can claim it.
    """
    now = utcnow()
    cutoff = now - timedelta(seconds=grace_s)
    waiting = Job.state.in_(CLAIMABLE) & (func.coalesce(Job.not_before, Job.updated_at) < cutoff)
    orphaned = (Job.state == JobState.RUNNING) & (Job.lease_expires_at < now)
    return list(session.scalars(select(Job.id).where(waiting | orphaned).limit(1000)))
