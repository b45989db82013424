"""Tenant credentials, idempotency keys and the callback outbox."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Enum, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, new_id, utcnow


class ApiKey(Base):
    """A tenant's API key. Only its SHA-256 is stored; the key is shown once."""

    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"),
                                           index=True)
    prefix: Mapped[str] = mapped_column(String(16), index=True,
                                        doc="First characters, to find and name the key.")
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]


class WebhookSecret(Base):
    """A secret that signs intake requests and callbacks (Standard Webhooks, `whsec_...`).

    Several may be active at once so that a caller can rotate without downtime. HMAC needs
    the secret itself, so it is stored as is.
    """

    __tablename__ = "webhook_secrets"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"),
                                           index=True)
    secret: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(
        doc="After rotation, the old secret stays valid until this time.")


class IdempotencyKey(Base):
    """An intake request's key (Idempotency-Key or webhook-id) and the job it created."""

    __tablename__ = "idempotency_keys"

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"),
                                           primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    body_sha256: Mapped[str] = mapped_column(String(64))
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class OutboxState(enum.StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"


class CallbackOutbox(Base):
    """A callback to send, written in the transaction that ended the job."""

    __tablename__ = "callback_outbox"
    __table_args__ = (Index("ix_callback_outbox_state_next_attempt_at", "state",
                            "next_attempt_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"),
                                              index=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    event: Mapped[str] = mapped_column(String(64), doc="job.succeeded, job.failed, ...")
    webhook_id: Mapped[str] = mapped_column(String(64), unique=True,
                                            doc="Standard Webhooks message id, kept on retries.")
    target_url: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any]]
    state: Mapped[OutboxState] = mapped_column(
        Enum(OutboxState, name="outbox_state", values_callable=lambda s: [x.value for x in s]),
        default=OutboxState.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]


class CallbackAttempt(Base):
    """One HTTP delivery attempt of a callback."""

    __tablename__ = "callback_attempts"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    outbox_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("callback_outbox.id", ondelete="CASCADE"), index=True)
    status_code: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int] = mapped_column(default=0)
    at: Mapped[datetime] = mapped_column(default=utcnow)
