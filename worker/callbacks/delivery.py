"""Deliver due callbacks from the outbox, with retries until the retry window closes.

Each callback is claimed in its own short transaction (`FOR UPDATE SKIP LOCKED`), which
moves `next_attempt_at` forward by a lease, and the HTTP request is sent outside any
transaction. The result is written only if the row still carries that lease, so a
concurrent `redeliver` or a second delivery run never overwrites a newer state. If a
process dies mid-request, the callback is due again once the lease ends and may reach
the receiver twice with the same `webhook-id`, which receivers use to drop duplicates.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from models import CallbackAttempt, CallbackOutbox, OutboxState, WebhookSecret
from models.base import utcnow
from worker import metrics
from worker.callbacks.sender import MAX_REDIRECTS, Message, SendResult, new_client, send
from worker.callbacks.ssrf import Policy, Resolver
from worker.db import session_scope
from worker.settings import Settings, get_settings
from worker.signing import InvalidSecretError, decode_secret

logger = logging.getLogger(__name__)

# A run stops claiming new callbacks after this many seconds, so that it ends well inside
# the Celery task time limit (900 s). The next scheduled run takes the rest.
RUN_BUDGET_S = 300.0


@dataclass(frozen=True)
class Claimed:
    """A callback taken for one attempt, fenced by its lease."""

    id: uuid.UUID
    job_id: uuid.UUID
    tenant_id: str
    message: Message
    attempts: int
    created_at: datetime
    lease_until: datetime


@dataclass
class RunReport:
    """Counts of one delivery run."""

    delivered: int = 0
    retrying: int = 0
    dead: int = 0

    @property
    def attempted(self) -> int:
        return self.delivered + self.retrying + self.dead


def lease_s(settings: Settings) -> float:
    """Return how long a claimed callback stays hidden from other runs, in seconds."""
    return settings.callback_timeout_s * (MAX_REDIRECTS + 1) * 2 + 30


def retry_delay_s(attempts: int, settings: Settings,
                  jitter: Callable[[], float] = random.random) -> float:
    """Return the wait after the `attempts`-th failure: doubling, capped, 50-100 % jitter."""
    exponent = min(attempts - 1, 30)
    delay = min(settings.callback_retry_base_s * 2 ** exponent,
                settings.callback_retry_max_delay_s)
    return delay * (0.5 + jitter() / 2)


def deliver_due(settings: Settings | None = None, clock: Callable[[], datetime] = utcnow,
                transport: httpx.BaseTransport | None = None,
                resolve: Resolver | None = None) -> RunReport:
    """Send every due pending callback once, up to `callback_batch_size` of them.

    `clock` gives the current time; tests move it forward to make retries due.
    """
    settings = settings or get_settings()
    policy = Policy.from_settings(settings)
    report = RunReport()
    started = time.monotonic()
    with new_client(settings.callback_timeout_s, transport) as client:
        while report.attempted < settings.callback_batch_size:
            if time.monotonic() - started > RUN_BUDGET_S:
                break
            claimed = claim_next(clock(), settings)
            if claimed is None:
                break
            secrets = active_secrets(claimed.tenant_id, clock())
            sent_at = time.monotonic()
            result = send(client, claimed.message, secrets, policy, resolve)
            duration_ms = round((time.monotonic() - sent_at) * 1000)
            outcome = record_result(claimed, result, clock(), settings, duration_ms)
            setattr(report, outcome, getattr(report, outcome) + 1)
    return report


def claim_next(now: datetime, settings: Settings) -> Claimed | None:
    """Take the oldest due pending callback that no other run holds."""
    lease_until = now + timedelta(seconds=lease_s(settings))
    with session_scope() as session:
        outbox = session.scalars(
            select(CallbackOutbox)
            .where(CallbackOutbox.state == OutboxState.PENDING,
                   CallbackOutbox.next_attempt_at <= now)
            .order_by(CallbackOutbox.next_attempt_at)
            .limit(1)
            .with_for_update(skip_locked=True)
        ).one_or_none()
        if outbox is None:
            return None
        outbox.next_attempt_at = lease_until
        return Claimed(
            id=outbox.id, job_id=outbox.job_id, tenant_id=outbox.tenant_id,
            message=Message(outbox.webhook_id, outbox.target_url, outbox.payload),
            attempts=outbox.attempts, created_at=outbox.created_at, lease_until=lease_until,
        )


def active_secrets(tenant_id: str, now: datetime) -> list[str]:
    """Return the tenant's unexpired, well-formed webhook secrets, newest first."""
    with session_scope() as session:
        rows = session.execute(
            select(WebhookSecret.id, WebhookSecret.secret)
            .where(WebhookSecret.tenant_id == tenant_id,
                   or_(WebhookSecret.expires_at.is_(None), WebhookSecret.expires_at > now))
            .order_by(WebhookSecret.created_at.desc())
        ).all()
    secrets = []
    for secret_id, secret in rows:
        try:
            decode_secret(secret)
        except InvalidSecretError:
            logger.error("webhook secret is not valid base64; callbacks are signed without it",
                         extra={"action": "callback.invalid_secret", "tenant": tenant_id,
                                "secret_id": str(secret_id)})
            continue
        secrets.append(secret)
    return secrets


def record_result(claimed: Claimed, result: SendResult, now: datetime,
                  settings: Settings, duration_ms: int = 0) -> str:
    """Store the attempt and move the callback on; return delivered, retrying or dead."""
    attempts = claimed.attempts + 1
    values, outcome = _next_state(claimed, result, attempts, now, settings)
    with session_scope() as session:
        session.add(CallbackAttempt(outbox_id=claimed.id, status_code=result.status_code,
                                    error=result.error, duration_ms=duration_ms, at=now))
        held = _update_if_held(session, claimed, {"attempts": attempts, **values})
    if not held:
        # A redelivery or a newer run changed the row while the request was in flight;
        # its state wins, and this attempt stays only in callback_attempts.
        logger.info("callback changed during delivery; result kept as an attempt only",
                    extra={"action": "callback.superseded", "outbox_id": str(claimed.id),
                           "webhook_id": claimed.message.webhook_id})
        return "retrying"
    _log_and_count(claimed, result, outcome, attempts, values)
    return outcome


def _next_state(claimed: Claimed, result: SendResult, attempts: int, now: datetime,
                settings: Settings) -> tuple[dict[str, object], str]:
    if result.ok:
        return {"state": OutboxState.DELIVERED, "delivered_at": now, "last_error": None}, \
            "delivered"
    deadline = claimed.created_at + timedelta(seconds=settings.callback_retry_window_s)
    if result.permanent or now >= deadline:
        return {"state": OutboxState.DEAD, "last_error": result.error}, "dead"
    # The last retry happens at the end of the window rather than being skipped.
    next_at = min(now + timedelta(seconds=retry_delay_s(attempts, settings)), deadline)
    return {"next_attempt_at": next_at, "last_error": result.error}, "retrying"


def _update_if_held(session: Session, claimed: Claimed, values: dict[str, object]) -> bool:
    updated = session.execute(
        update(CallbackOutbox)
        .where(CallbackOutbox.id == claimed.id,
               CallbackOutbox.state == OutboxState.PENDING,
               CallbackOutbox.next_attempt_at == claimed.lease_until)
        .values(**values)
        .returning(CallbackOutbox.id)
    ).first()
    return updated is not None


def _log_and_count(claimed: Claimed, result: SendResult, outcome: str, attempts: int,
                   values: dict[str, object]) -> None:
    ids = {"outbox_id": str(claimed.id), "job_id": str(claimed.job_id),
           "webhook_id": claimed.message.webhook_id, "attempts": attempts,
           "status_code": result.status_code}
    if result.failure is not None:
        metrics.CALLBACK_FAILURES.labels(result.failure).inc()
    if outcome == "delivered":
        metrics.CALLBACK_DELIVERIES.labels("delivered").inc()
        logger.info("callback delivered", extra={"action": "callback.delivered", **ids})
    elif outcome == "dead":
        metrics.CALLBACK_DELIVERIES.labels("dead").inc()
        logger.error("callback is dead after its last attempt failed: %s", result.error,
                     extra={"action": "callback.dead", **ids})
    else:
        logger.warning("callback delivery failed; will retry: %s", result.error, extra={
            "action": "callback.retry_scheduled",
            "next_attempt_at": str(values["next_attempt_at"]), **ids})
