"""What reviewers do to review items: claim, release, approve, reject and retry.

Every action locks the item row (`SELECT ... FOR UPDATE`), checks that the item is open
and writes a `review_events` row, all in the caller's transaction. Approve, reject and
retry also need the acting reviewer's live claim, and change the job with a
compare-and-set on `needs_review`. An action that is not allowed raises a `ReviewError`
subclass whose message names the step the reviewer can take instead.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select, update
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session

from models import Job, JobState, Reviewer, ReviewEvent, ReviewItem, ReviewState
from models.base import utcnow
from worker.callbacks.outbox import write_callback
from worker.config import SluiceConfig
from worker.errors import SluiceError
from worker.pipeline.results import save_record
from worker.workflows import get_workflow
from worker.workflows.validation import ValidationResult

logger = logging.getLogger(__name__)

REJECTED_REASON = "rejected"


class ReviewError(SluiceError):
    """A review action is not allowed; the message names the item and the way forward."""


class ItemNotFoundError(ReviewError):
    def __init__(self, item_id: object) -> None:
        super().__init__(f"review item {item_id} does not exist")


class ReviewConflictError(ReviewError):
    """The item or its job is not in a state that allows the action (claim, settled)."""


class ReviewInputError(ReviewError):
    """The reviewer's input is unusable (empty reason, model outside the route)."""


class RecordRejectedError(ReviewError):
    """The database rejected the record even though the output passed validation."""


# Claims --------------------------------------------------------------------------------


def claim(session: Session, item_id: uuid.UUID, reviewer: Reviewer, ttl_s: float,
          now: datetime | None = None) -> ReviewItem:
    """Claim an open item, or renew one's own claim; an expired claim may be taken over."""
    now = now or utcnow()
    item = _locked_open_item(session, item_id)
    previous = item.claimed_by_id
    if previous not in (None, reviewer.id) and claim_live(item, now):
        raise ReviewConflictError(_held_message(session, item))
    item.claimed_by_id = reviewer.id
    item.claim_expires_at = now + timedelta(seconds=ttl_s)
    detail: dict[str, Any] = {"expires_at": item.claim_expires_at.isoformat()}
    if previous not in (None, reviewer.id):
        detail["taken_over_from"] = _username(session, previous)
    _record(session, item, reviewer, "claim", detail, now)
    return item


def release(session: Session, item_id: uuid.UUID, reviewer: Reviewer,
            now: datetime | None = None) -> None:
    """Give up one's claim so another reviewer may take the item at once."""
    now = now or utcnow()
    item = _locked_open_item(session, item_id)
    if item.claimed_by_id != reviewer.id:
        raise ReviewConflictError(f"you do not hold the claim on review item {item_id}")
    item.claimed_by_id = None
    item.claim_expires_at = None
    _record(session, item, reviewer, "release", {}, now)


# Resolutions ---------------------------------------------------------------------------


def approve(session: Session, item_id: uuid.UUID, reviewer: Reviewer, config: SluiceConfig,
            raw_output: str, now: datetime | None = None) -> ValidationResult:
    """Validate the corrected JSON text like machine output and, if valid, settle the job.

    On success the record, the job's move to `succeeded` and the item's approval share
    the caller's transaction. Invalid output changes nothing but the audit trail, and
    the returned result lists its issues.
    """
    now = now or utcnow()
    item = _claimed_item(session, item_id, reviewer, now)
    job = _job(session, item)
    workflow = get_workflow(config, job.workflow)
    result = workflow.validate_output(raw_output)
    if not result.ok:
        _record(session, item, reviewer, "approve_invalid",
                {"errors": [issue.as_dict() for issue in result.issues]}, now)
        return result
    assert result.output is not None

    job_id = job.id
    _settle_job(session, job, JobState.SUCCEEDED, None, now)
    save_record(session, workflow, job_id, result.output)
    try:
        session.flush()
    except (IntegrityError, DataError) as exc:
        # The caller's transaction is rolled back: job, item and audit trail stay as
        # they were. The session can no longer load attributes, so only local values
        # go into the message.
        raise RecordRejectedError(
            f"the database rejected the record of job {job_id}: {exc.orig}; "
            "correct the values and approve again"
        ) from exc
    approved = _jsonable(result.output)
    _resolve(item, reviewer, ReviewState.APPROVED, None, now)
    item.approved_output = approved
    _record(session, item, reviewer, "approve", {"output": approved}, now)
    logger.info("review item approved", extra={
        "action": "review.approved", "item_id": str(item.id), "job_id": str(job_id),
        "reviewer": reviewer.username})
    return result


def reject(session: Session, item_id: uuid.UUID, reviewer: Reviewer, reason: str,
           now: datetime | None = None) -> None:
    """Fail the job with reason `rejected`; the reviewer's text is kept on the item."""
    now = now or utcnow()
    reason = without_nul(reason.strip())
    if not reason:
        raise ReviewInputError("a rejection needs a reason; say why the job cannot succeed")
    item = _claimed_item(session, item_id, reviewer, now)
    job = _job(session, item)
    _settle_job(session, job, JobState.FAILED, REJECTED_REASON, now)
    write_callback(session, job.id, JobState.FAILED)
    _resolve(item, reviewer, ReviewState.REJECTED, reason, now)
    _record(session, item, reviewer, "reject", {"reason": reason}, now)
    logger.info("review item rejected", extra={
        "action": "review.rejected", "item_id": str(item.id), "job_id": str(job.id),
        "reviewer": reviewer.username})


def retry(session: Session, item_id: uuid.UUID, reviewer: Reviewer, config: SluiceConfig,
          model_key: str, now: datetime | None = None) -> uuid.UUID:
    """Put the job back in the queue with `route_override = model_key`; return its id.

    The job gets a fresh attempt budget (`deferrals = attempt_count`, so `max_attempts`
    counts from zero again). The caller publishes the task after commit, with
    `worker.tasks.publish`.
    """
    now = now or utcnow()
    item = _claimed_item(session, item_id, reviewer, now)
    job = _job(session, item)
    route = route_models(config, job.workflow)
    if model_key not in route:
        raise ReviewInputError(
            f"model {model_key!r} is not in the route of workflow {job.workflow!r}; "
            f"choose one of: {', '.join(route)}"
        )
    moved = session.execute(
        update(Job)
        .where(Job.id == job.id, Job.state == JobState.NEEDS_REVIEW)
        .values(state=JobState.QUEUED, reason=None, not_before=None, lease_expires_at=None,
                finished_at=None, deferrals=Job.attempt_count, route_override=model_key,
                queued_at=now, updated_at=now)
        .returning(Job.id)
    ).first()
    if moved is None:
        raise _not_in_review(session, job)
    _resolve(item, reviewer, ReviewState.RETRIED, f"retry on {model_key}", now)
    _record(session, item, reviewer, "retry", {"model": model_key}, now)
    logger.info("review item sent back to the queue", extra={
        "action": "review.retried", "item_id": str(item.id), "job_id": str(job.id),
        "model": model_key, "reviewer": reviewer.username})
    return job.id


def route_models(config: SluiceConfig, workflow: str) -> list[str]:
    """Return the model keys a retry may use: the workflow's route, or [] if unconfigured."""
    workflow_config = config.workflows.get(workflow)
    return list(workflow_config.route) if workflow_config is not None else []


# Helpers -------------------------------------------------------------------------------


def _locked_open_item(session: Session, item_id: uuid.UUID) -> ReviewItem:
    item = session.scalars(
        select(ReviewItem).where(ReviewItem.id == item_id).with_for_update()
    ).one_or_none()
    if item is None:
        raise ItemNotFoundError(item_id)
    if item.state != ReviewState.OPEN:
        raise ReviewConflictError(
            f"review item {item_id} is already {item.state.value}"
            + (f" by {item.resolved_by}" if item.resolved_by else "")
            + "; nothing is left to do on it"
        )
    return item


def _claimed_item(session: Session, item_id: uuid.UUID, reviewer: Reviewer,
                  now: datetime) -> ReviewItem:
    item = _locked_open_item(session, item_id)
    if item.claimed_by_id == reviewer.id and claim_live(item, now):
        return item
    if item.claimed_by_id not in (None, reviewer.id) and claim_live(item, now):
        raise ReviewConflictError(_held_message(session, item))
    if item.claimed_by_id == reviewer.id:
        raise ReviewConflictError(
            f"your claim on review item {item_id} expired; claim it again, then act")
    raise ReviewConflictError(f"claim review item {item_id} before acting on it")


def claim_live(item: ReviewItem, now: datetime) -> bool:
    return item.claim_expires_at is not None and item.claim_expires_at > now


def _held_message(session: Session, item: ReviewItem) -> str:
    assert item.claim_expires_at is not None and item.claimed_by_id is not None
    return (f"review item {item.id} is claimed by {_username(session, item.claimed_by_id)} "
            f"until {item.claim_expires_at:%Y-%m-%d %H:%M:%S} UTC; wait for them to finish "
            "or for the claim to expire")


def _username(session: Session, reviewer_id: uuid.UUID | None) -> str | None:
    return session.scalar(select(Reviewer.username).where(Reviewer.id == reviewer_id))


def _job(session: Session, item: ReviewItem) -> Job:
    job = session.get(Job, item.job_id)
    assert job is not None, "review_items.job_id is a foreign key"
    return job


def _settle_job(session: Session, job: Job, state: JobState, reason: str | None,
                now: datetime) -> None:
    """Move the job from needs_review to a final state, or raise if it has left review."""
    moved = session.execute(
        update(Job)
        .where(Job.id == job.id, Job.state == JobState.NEEDS_REVIEW)
        .values(state=state, reason=reason, finished_at=now, updated_at=now)
        .returning(Job.id)
    ).first()
    if moved is None:
        raise _not_in_review(session, job)


def _not_in_review(session: Session, job: Job) -> ReviewConflictError:
    session.refresh(job)
    return ReviewConflictError(
        f"job {job.id} is {job.state.value}, not needs_review, so this item can no longer "
        "change it; reload the queue")


def _resolve(item: ReviewItem, reviewer: Reviewer, state: ReviewState, note: str | None,
             now: datetime) -> None:
    item.state = state
    item.resolved_at = now
    item.resolved_by = reviewer.username
    item.resolution_note = note
    item.claim_expires_at = None


def _record(session: Session, item: ReviewItem, reviewer: Reviewer, action: str,
            detail: dict[str, Any], now: datetime) -> None:
    session.add(ReviewEvent(item_id=item.id, reviewer_id=reviewer.id, action=action,
                            detail=without_nul(detail), at=now))


def without_nul(value: Any) -> Any:
    """Replace NUL characters, which PostgreSQL text and JSONB cannot store, with U+FFFD.

    Submitted text and the values quoted in validation issues may contain them.
    """
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, list):
        return [without_nul(item) for item in value]
    if isinstance(value, dict):
        return {without_nul(key): without_nul(item) for key, item in value.items()}
    return value


def _jsonable(output: BaseModel) -> dict[str, Any]:
    data: dict[str, Any] = output.model_dump(mode="json")
    return data
