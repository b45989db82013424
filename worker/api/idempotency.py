"""Idempotent job creation: one job per tenant and key, however often a request arrives.

The key is the `Idempotency-Key` header, or else the signed request's `webhook-id`. The
job and its key row are inserted in one transaction, and the key row uses
`INSERT ... ON CONFLICT DO NOTHING`. When two deliveries race, Postgres makes the second
insert wait for the first transaction. If the first commits, the second inserts nothing, so
it rolls back its own job and returns the first one.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session
from starlette.datastructures import Headers

from models import IdempotencyKey
from worker.api.errors import ApiError

logger = logging.getLogger(__name__)

MAX_KEY_LENGTH = 255


class _KeyTaken(Exception):
    """Another request stored this key first; the savepoint with our job is rolled back."""


def request_key(headers: Headers, webhook_id: str | None) -> str | None:
    """Return the request's idempotency key, or None when it has none."""
    key = headers.get("idempotency-key") or webhook_id
    if key is None:
        return None
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not key.isascii() or not key.isprintable():
        raise ApiError(422, "invalid_request", f"the idempotency key must be 1-{MAX_KEY_LENGTH} "
                       "printable ASCII characters; send a UUID, for example",
                       details=[{"field": "Idempotency-Key", "message": "invalid value"}])
    return key


def body_sha256(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def find_job(session: Session, tenant_id: str, key: str, body_hash: str) -> uuid.UUID | None:
    """Return the job an earlier request with this key created, or None if there is none.

    Raises a 409 ApiError when that request had a different body.
    """
    row = session.get(IdempotencyKey, (tenant_id, key))
    if row is None:
        return None
    if row.body_sha256 != body_hash:
        logger.info("idempotency key reused with another body",
                    extra={"action": "intake.idempotency_conflict", "tenant_id": tenant_id,
                           "job_id": str(row.job_id)})
        raise ApiError(409, "idempotency_conflict",
                       f"idempotency key {key!r} was already used for job {row.job_id} with a "
                       "different request body; send a new key for a new job, or the same "
                       "body to get that job back")
    return row.job_id


def create_once(
    session: Session, tenant_id: str, key: str, body_hash: str,
    create_job: Callable[[Session], uuid.UUID],
) -> tuple[uuid.UUID, bool]:
    """Create the job unless the key already has one; return the job id and whether it is new."""
    try:
        with session.begin_nested():
            job_id = create_job(session)
            inserted = session.execute(
                insert(IdempotencyKey)
                .values(tenant_id=tenant_id, key=key, body_sha256=body_hash, job_id=job_id)
                .on_conflict_do_nothing(index_elements=["tenant_id", "key"])
                .returning(IdempotencyKey.key)
            ).first()
            if inserted is None:
                raise _KeyTaken
    except _KeyTaken:
        # Only reached after the other transaction committed, so its row is visible now.
        existing = find_job(session, tenant_id, key, body_hash)
        if existing is None:
            raise RuntimeError(f"idempotency key of tenant {tenant_id} conflicted but its "
                               "row is missing") from None
        return existing, False
    return job_id, True


def purge_idempotency_keys(session: Session, older_than: datetime) -> int:
    """Delete keys created before `older_than`; return how many were deleted.

    Keep at least the retention the API promises (SLUICE_IDEMPOTENCY_RETENTION_DAYS, 7 days
    or more): a delivery repeated after its key is gone creates a second job.
    """
    result = session.execute(
        delete(IdempotencyKey).where(IdempotencyKey.created_at < older_than))
    count = int(getattr(result, "rowcount", 0))
    logger.info("idempotency keys purged", extra={"action": "intake.idempotency_purged",
                                                  "count": count})
    return count

