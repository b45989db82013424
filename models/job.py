"""Tenants, jobs, attempts and LLM calls."""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import CheckConstraint, Enum, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, new_id, utcnow


class JobState(enum.StrEnum):
    """Life cycle of a job.

    received -> queued -> running -> succeeded | needs_review | failed.
    A running job may go back to queued when its attempt ends in a transient failure.
    needs_review is where the machine stops; a reviewer moves the job to succeeded or failed.
    """

    RECEIVED = "received"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    NEEDS_REVIEW = "needs_review"
    FAILED = "failed"


# States in which no worker will touch the job again on its own.
SETTLED_STATES = frozenset({JobState.SUCCEEDED, JobState.NEEDS_REVIEW, JobState.FAILED})
FINAL_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED})

job_state_enum = Enum(
    JobState,
    name="job_state",
    values_callable=lambda states: [state.value for state in states],
)


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    daily_budget_usd: Mapped[Decimal | None] = mapped_column(
        doc="Ceiling on LLM spend per UTC day; calls wait for the next day once it is reached."
    )
    monthly_budget_usd: Mapped[Decimal | None] = mapped_column(
        doc="Ceiling on LLM spend per UTC calendar month."
    )
    callback_url: Mapped[str | None] = mapped_column(
        Text, doc="Where results go when a job does not name its own callback URL."
    )
    allow_unsigned: Mapped[bool] = mapped_column(
        default=False, doc="Accept requests with an API key but no webhook signature."
    )
    intake_per_minute: Mapped[int | None] = mapped_column(
        doc="Jobs the tenant may submit per minute; over it intake answers 429."
    )
    max_queued_jobs: Mapped[int | None] = mapped_column(
        doc="Waiting jobs over which intake answers 429 (backpressure)."
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_state_updated_at", "state", "updated_at"),
        Index("ix_jobs_tenant_external_id", "tenant_id", "external_id"),
        CheckConstraint("attempt_count >= 0", name="attempt_count_not_negative"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    workflow: Mapped[str] = mapped_column(String(100))
    external_id: Mapped[str | None] = mapped_column(String(200))
    callback_url: Mapped[str | None] = mapped_column(Text)
    input: Mapped[dict[str, Any]]
    state: Mapped[JobState] = mapped_column(job_state_enum, default=JobState.RECEIVED)
    reason: Mapped[str | None] = mapped_column(
        String(64), doc="Reason code of needs_review or failed."
    )
    attempt_count: Mapped[int] = mapped_column(default=0)
    deferrals: Mapped[int] = mapped_column(
        default=0,
        doc="Attempts that ended waiting (rate limit, budget) rather than failing; they do "
        "not count against max_attempts.",
    )
    cost_usd: Mapped[Decimal] = mapped_column(default=Decimal(0))
    route_override: Mapped[str | None] = mapped_column(
        String(100), doc="Model key a reviewer chose when sending the job back to the queue."
    )
    lease_expires_at: Mapped[datetime | None]
    not_before: Mapped[datetime | None] = mapped_column(
        doc="Earliest time a worker may start the next attempt."
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    queued_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    attempts: Mapped[list[Attempt]] = relationship(
        back_populates="job", order_by="Attempt.number", cascade="all, delete-orphan"
    )


class Attempt(Base):
    """One execution of a job by a worker; it may make several LLM calls."""

    __tablename__ = "attempts"
    __table_args__ = (UniqueConstraint("job_id", "number", name="uq_attempts_job_id_number"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    number: Mapped[int]
    worker: Mapped[str | None] = mapped_column(String(200))
    outcome: Mapped[str | None] = mapped_column(
        String(64), doc="succeeded, needs_review, retry or failed; null while running."
    )
    reason: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[str | None] = mapped_column(Text)
    route_log: Mapped[list[Any]] = mapped_column(
        default=list, doc="Route events: model used per step, fallbacks, escalations, why."
    )
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]

    job: Mapped[Job] = relationship(back_populates="attempts")
    llm_calls: Mapped[list[LLMCall]] = relationship(
        back_populates="attempt", order_by="LLMCall.created_at", cascade="all, delete-orphan"
    )


class LLMCall(Base):
    """One request to a provider, priced and timed, whether it succeeded or not."""

    __tablename__ = "llm_calls"
    __table_args__ = (
        Index("ix_llm_calls_created_at", "created_at"),
        Index("ix_llm_calls_tenant_id_created_at", "tenant_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    attempt_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("attempts.id", ondelete="CASCADE"))
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    workflow: Mapped[str] = mapped_column(String(100))
    purpose: Mapped[str] = mapped_column(String(32), doc="first, repair or escalation.")
    route_step: Mapped[int]
    provider: Mapped[str] = mapped_column(String(100))
    model: Mapped[str] = mapped_column(String(200))
    messages: Mapped[list[Any]] = mapped_column(doc="The rendered prompt as sent.")
    raw_output: Mapped[str | None] = mapped_column(Text)
    finish_reason: Mapped[str | None] = mapped_column(String(32))
    prompt_tokens: Mapped[int] = mapped_column(default=0)
    completion_tokens: Mapped[int] = mapped_column(default=0)
    cached_tokens: Mapped[int] = mapped_column(default=0)
    reasoning_tokens: Mapped[int] = mapped_column(
        default=0, doc="Part of completion_tokens, as OpenAI-compatible APIs report them."
    )
    max_tokens: Mapped[int | None] = mapped_column(doc="Output budget sent with the call.")
    latency_ms: Mapped[int] = mapped_column(default=0)
    http_status: Mapped[int | None]
    error_kind: Mapped[str | None] = mapped_column(String(64))
    validation_errors: Mapped[list[Any] | None]
    cost_usd: Mapped[Decimal] = mapped_column(default=Decimal(0))
    price_date: Mapped[date | None] = mapped_column(doc="Version of the price table used.")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    attempt: Mapped[Attempt] = relationship(back_populates="llm_calls")
