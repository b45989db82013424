"""Read-only views of review items for the pages and the CLI."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session, aliased

from models import Attempt, Job, LLMCall, Reviewer, ReviewEvent, ReviewItem, ReviewState
from worker.review.service import ItemNotFoundError, ReviewInputError, claim_live


@dataclass(frozen=True)
class QueueFilter:
    workflow: str | None = None
    reason: str | None = None
    tenant: str | None = None
    older_than_h: float | None = None


@dataclass(frozen=True)
class QueueRow:
    item_id: uuid.UUID
    job_id: uuid.UUID
    workflow: str
    tenant: str
    reason: str
    created_at: datetime
    age_s: float
    claimed_by: str | None


@dataclass(frozen=True)
class Queue:
    rows: list[QueueRow]
    total: int
    counts_by_reason: dict[str, int]
    workflows: list[str]
    tenants: list[str]


def open_queue(session: Session, filters: QueueFilter, now: datetime, limit: int) -> Queue:
    """List open items, oldest first, with counts per reason under the other filters."""
    conditions = _conditions(filters, now)
    without_reason = _conditions(
        QueueFilter(filters.workflow, None, filters.tenant, filters.older_than_h), now)
    counts_query = (
        select(ReviewItem.reason, func.count()).join(Job, Job.id == ReviewItem.job_id)
        .where(*without_reason).group_by(ReviewItem.reason).order_by(ReviewItem.reason)
    )
    counts = {reason: count for reason, count in session.execute(counts_query)}

    holder = aliased(Reviewer)
    rows = session.execute(
        select(ReviewItem, Job, holder.username)
        .join(Job, Job.id == ReviewItem.job_id)
        .outerjoin(holder, holder.id == ReviewItem.claimed_by_id)
        .where(*conditions)
        .order_by(ReviewItem.created_at, ReviewItem.id).limit(limit)
    ).all()
    total = session.scalar(
        select(func.count()).select_from(ReviewItem).join(Job, Job.id == ReviewItem.job_id)
        .where(*conditions)
    ) or 0
    return Queue(
        rows=[_row(item, job, username, now) for item, job, username in rows],
        total=total,
        counts_by_reason=counts,
        workflows=_distinct_open(session, Job.workflow),
        tenants=_distinct_open(session, Job.tenant_id),
    )


def _conditions(filters: QueueFilter, now: datetime) -> list[ColumnElement[bool]]:
    conditions = [ReviewItem.state == ReviewState.OPEN]
    if filters.workflow:
        conditions.append(Job.workflow == filters.workflow)
    if filters.reason:
        conditions.append(ReviewItem.reason == filters.reason)
    if filters.tenant:
        conditions.append(Job.tenant_id == filters.tenant)
    if filters.older_than_h is not None:
        cutoff = now - timedelta(hours=filters.older_than_h)
        conditions.append(ReviewItem.created_at <= cutoff)
    return conditions


def _distinct_open(session: Session, column: Any) -> list[str]:
    return list(session.scalars(
        select(column).distinct().join(ReviewItem, ReviewItem.job_id == Job.id)
        .where(ReviewItem.state == ReviewState.OPEN).order_by(column)
    ))


def _row(item: ReviewItem, job: Job, username: str | None, now: datetime) -> QueueRow:
    return QueueRow(
        item_id=item.id, job_id=job.id, workflow=job.workflow, tenant=job.tenant_id,
        reason=item.reason, created_at=item.created_at,
        age_s=(now - item.created_at).total_seconds(),
        claimed_by=username if claim_live(item, now) else None,
    )


@dataclass(frozen=True)
class CallView:
    """One LLM call as the item page shows it."""

    model: str
    provider: str
    purpose: str
    route_step: int
    messages: list[Any]
    raw_output: str | None
    finish_reason: str | None
    validation_errors: list[Any]
    cost_usd: Decimal
    prompt_tokens: int
    completion_tokens: int
    latency_ms: int
    http_status: int | None
    error_kind: str | None
    created_at: datetime


@dataclass(frozen=True)
class AttemptView:
    number: int
    outcome: str | None
    reason: str | None
    detail: str | None
    started_at: datetime
    finished_at: datetime | None
    calls: list[CallView] = field(default_factory=list)


@dataclass(frozen=True)
class ItemDetail:
    item: ReviewItem
    job: Job
    claimed_by: str | None
    attempts: list[AttemptView]
    events: list[dict[str, Any]]


def item_detail(session: Session, item_id: uuid.UUID, now: datetime) -> ItemDetail:
    """Load an item with its job, every attempt and call of the job, and its audit trail."""
    item = session.get(ReviewItem, item_id)
    if item is None:
        raise ItemNotFoundError(item_id)
    job = session.get(Job, item.job_id)
    assert job is not None, "review_items.job_id is a foreign key"
    claimed_by = None
    if item.claimed_by_id is not None and claim_live(item, now):
        claimed_by = session.scalar(
            select(Reviewer.username).where(Reviewer.id == item.claimed_by_id))
    return ItemDetail(item=item, job=job, claimed_by=claimed_by,
                      attempts=_attempts(session, job.id), events=events(session, item.id))


def _attempts(session: Session, job_id: uuid.UUID) -> list[AttemptView]:
    attempts = session.scalars(
        select(Attempt).where(Attempt.job_id == job_id).order_by(Attempt.number)).all()
    calls = session.scalars(
        select(LLMCall).where(LLMCall.job_id == job_id).order_by(LLMCall.created_at)).all()
    views = []
    for attempt in attempts:
        views.append(AttemptView(
            number=attempt.number, outcome=attempt.outcome, reason=attempt.reason,
            detail=attempt.detail, started_at=attempt.started_at,
            finished_at=attempt.finished_at,
            calls=[_call(call) for call in calls if call.attempt_id == attempt.id],
        ))
    return views


def _call(call: LLMCall) -> CallView:
    return CallView(
        model=call.model, provider=call.provider, purpose=call.purpose,
        route_step=call.route_step, messages=call.messages, raw_output=call.raw_output,
        finish_reason=call.finish_reason, validation_errors=call.validation_errors or [],
        cost_usd=call.cost_usd, prompt_tokens=call.prompt_tokens,
        completion_tokens=call.completion_tokens, latency_ms=call.latency_ms,
        http_status=call.http_status, error_kind=call.error_kind, created_at=call.created_at,
    )


def events(session: Session, item_id: uuid.UUID) -> list[dict[str, Any]]:
    """Return the item's audit trail, oldest first, with each reviewer's username."""
    rows = session.execute(
        select(ReviewEvent, Reviewer.username)
        .join(Reviewer, Reviewer.id == ReviewEvent.reviewer_id)
        .where(ReviewEvent.item_id == item_id)
        .order_by(ReviewEvent.at, ReviewEvent.id)
    ).all()
    return [{"at": event.at, "reviewer": username, "action": event.action,
             "detail": event.detail} for event, username in rows]


def find_item_id(session: Session, text: str) -> uuid.UUID:
    """Resolve a review item id, or a job id (its newest item), to a review item id."""
    try:
        key = uuid.UUID(text)
    except ValueError as exc:
        raise ReviewInputError(f"{text!r} is not an item or job id (a UUID)") from exc
    if session.get(ReviewItem, key) is not None:
        return key
    item_id = session.scalar(
        select(ReviewItem.id).where(ReviewItem.job_id == key)
        .order_by(ReviewItem.created_at.desc()).limit(1)
    )
    if item_id is None:
        raise ItemNotFoundError(text)
    return item_id


def export_cases(session: Session, workflow: str | None = None) -> Iterator[dict[str, Any]]:
    """Yield approved items as evaluation cases, oldest approval first."""
    query = (
        select(ReviewItem, Job)
        .join(Job, Job.id == ReviewItem.job_id)
        .where(ReviewItem.state == ReviewState.APPROVED)
        .order_by(ReviewItem.resolved_at, ReviewItem.id)
    )
    if workflow is not None:
        query = query.where(Job.workflow == workflow)
    for item, job in session.execute(query):
        yield {"workflow": job.workflow, "input": job.input, "expected": item.approved_output,
               "source": "review", "job_id": str(job.id)}
