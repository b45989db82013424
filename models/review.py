"""Review items, the reviewers who resolve them, and the audit trail of their actions."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Enum, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, new_id, utcnow


class ReviewState(enum.StrEnum):
    """Life cycle of a review item.

    open -> approved (job succeeded with the reviewer's output) | rejected (job failed) |
    retried (job sent back to the queue; a new item opens if it lands in review again).
    """

    OPEN = "open"
    APPROVED = "approved"
    REJECTED = "rejected"
    RETRIED = "retried"


class Reviewer(Base):
    """A person allowed to log in to the review pages."""

    __tablename__ = "reviewers"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255), doc="Argon2id hash, PHC format.")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    disabled: Mapped[bool] = mapped_column(
        default=False, doc="A disabled reviewer cannot log in; open sessions stop working."
    )


class ReviewItem(Base):
    __tablename__ = "review_items"
    __table_args__ = (
        Index("ix_review_items_state_created_at", "state", "created_at"),
        # A retried job may come back to review, so a job can have several items over
        # time, but never two open ones.
        Index("uq_review_items_job_id_open", "job_id", unique=True,
              postgresql_where=text("state = 'open'")),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    job_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("jobs.id", ondelete="CASCADE"), index=True
    )
    reason: Mapped[str] = mapped_column(
        String(64), doc="invalid_json, schema_violation, rule_violation, truncated, ..."
    )
    errors: Mapped[list[Any]] = mapped_column(doc="Validation errors of the best attempt.")
    raw_output: Mapped[str | None] = mapped_column(Text)
    state: Mapped[ReviewState] = mapped_column(
        Enum(ReviewState, name="review_state", values_callable=lambda s: [x.value for x in s]),
        default=ReviewState.OPEN,
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(String(200), doc="Reviewer's username.")
    resolution_note: Mapped[str | None] = mapped_column(Text)
    claimed_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("reviewers.id"))
    claim_expires_at: Mapped[datetime | None] = mapped_column(
        doc="After this time another reviewer may take the item over."
    )
    approved_output: Mapped[dict[str, Any] | None] = mapped_column(
        doc="The output the reviewer approved, as stored in the record (JSON form)."
    )


class ReviewEvent(Base):
    """One reviewer action on one item: claim, release, approve, reject or retry."""

    __tablename__ = "review_events"
    __table_args__ = (Index("ix_review_events_item_id_at", "item_id", "at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    item_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("review_items.id", ondelete="CASCADE")
    )
    reviewer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("reviewers.id"))
    action: Mapped[str] = mapped_column(String(32))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    at: Mapped[datetime] = mapped_column(default=utcnow)


class AppSecret(Base):
    """A random secret generated once and shared by every process of a deployment.

    The review pages sign their session cookies with the `review_session` secret, so any
    number of API processes accept each other's cookies without configuration.
    """

    __tablename__ = "app_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
