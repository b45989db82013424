"""Review items: jobs the machine could not finish, waiting for a person."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Enum, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, new_id, utcnow


class ReviewState(enum.StrEnum):
    OPEN = "open"
    APPROVED = "approved"
    REJECTED = "rejected"


class ReviewItem(Base):
    __tablename__ = "review_items"
    __table_args__ = (Index("ix_review_items_state_created_at", "state", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    job_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("jobs.id", ondelete="CASCADE"), unique=True
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
    resolved_by: Mapped[str | None] = mapped_column(String(200))
    resolution_note: Mapped[str | None] = mapped_column(Text)
