"""Writing callbacks to the outbox and the operator's view of it.

`write_callback` runs inside the transaction that moves a job to a final state, so a
callback exists exactly when that transaction commits. Each job gets at most one callback,
because a job reaches `succeeded` or `failed` once: `needs_review` is not final (a reviewer
may still retry the job), so it sends none.
"""

from __future__ import annotations

import enum
import logging
import uuid
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from models import CallbackOutbox, Job, JobState, OutboxState, Tenant
from models.base import utcnow
from models.job import FINAL_STATES
from worker.errors import SluiceError

logger = logging.getLogger(__name__)


class CallbackNotFoundError(SluiceError):
    def __init__(self, outbox_id: object) -> None:
        super().__init__(f"callback {outbox_id} does not exist; list them with "
                         "`sluice callbacks list`")


def jsonable(value: Any) -> Any:
    """Convert a record to JSON types: Decimal as string, dates and times as ISO 8601."""
    if isinstance(value, BaseModel):
        return jsonable(value.model_dump(mode="python"))
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    return value


def new_webhook_id() -> str:
    return "msg_" + uuid.uuid4().hex


def write_callback(session: Session, job_id: uuid.UUID, state: JobState,
                   record: BaseModel | None = None) -> CallbackOutbox | None:
    """Add the callback of a job that reaches the final `state` in this transaction.

    The job's own callback URL wins over its tenant's. Return the new outbox row, or
    None when neither is set. Raise ValueError if `state` is not final.
    """
    if state not in FINAL_STATES:
        raise ValueError(f"{state.value} is not a final state; callbacks are written only "
                         "for succeeded and failed jobs")
    row = session.execute(
        select(Job.tenant_id, Job.workflow, Job.external_id, Job.reason,
               Job.finished_at, Job.callback_url,
               Tenant.callback_url.label("tenant_callback_url"))
        .join(Tenant, Tenant.id == Job.tenant_id)
        .where(Job.id == job_id)
    ).one()
    target = row.callback_url or row.tenant_callback_url
    if not target:
        return None

    event = f"job.{state.value}"
    payload = {
        "type": event,
        "timestamp": (row.finished_at or utcnow()).isoformat(),
        "data": {
            "job_id": str(job_id),
            "external_id": row.external_id,
            "workflow": row.workflow,
            "state": state.value,
            "reason": row.reason,
            "record": jsonable(record) if record is not None else None,
        },
    }
    outbox = CallbackOutbox(job_id=job_id, tenant_id=row.tenant_id, event=event,
                            webhook_id=new_webhook_id(), target_url=target, payload=payload,
                            state=OutboxState.PENDING, next_attempt_at=utcnow())
    session.add(outbox)
    logger.info("callback queued", extra={
        "action": "callback.queued", "job_id": str(job_id), "event": event,
        "webhook_id": outbox.webhook_id})
    return outbox


def list_callbacks(session: Session, state: OutboxState | None = None,
                   limit: int = 50) -> list[CallbackOutbox]:
    """Return the newest outbox rows, optionally only those in `state`."""
    query = select(CallbackOutbox).order_by(CallbackOutbox.created_at.desc()).limit(limit)
    if state is not None:
        query = query.where(CallbackOutbox.state == state)
    return list(session.scalars(query))


def redeliver(session: Session, outbox_id: uuid.UUID) -> CallbackOutbox:
    """Make a callback pending and due now; its attempts and webhook id are kept.

    The retry window still counts from the callback's creation, so a redelivered
    callback older than the window goes back to dead after one more failed attempt.
    """
    outbox = session.execute(
        select(CallbackOutbox).where(CallbackOutbox.id == outbox_id).with_for_update()
    ).scalar_one_or_none()
    if outbox is None:
        raise CallbackNotFoundError(outbox_id)
    previous = outbox.state
    outbox.state = OutboxState.PENDING
    outbox.next_attempt_at = utcnow()
    outbox.delivered_at = None
    logger.info("callback scheduled for redelivery", extra={
        "action": "callback.redeliver", "outbox_id": str(outbox_id),
        "webhook_id": outbox.webhook_id, "previous_state": previous.value})
    return outbox
