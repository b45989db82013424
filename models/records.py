"""Typed result records, one table per workflow kind.

Rows are written only by `worker.pipeline.record`, after validation passed. The check
constraints repeat the most important rules so that even a bug upstream cannot store an
invalid record.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Numeric, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, new_id, utcnow

# Unbounded, so a record keeps every digit that validation accepted.
Amount = Numeric()


class TicketClassification(Base):
    __tablename__ = "ticket_classifications"
    __table_args__ = (
        CheckConstraint("priority IN ('low', 'normal', 'high', 'urgent')", name="priority_known"),
        CheckConstraint("length(language) BETWEEN 2 AND 3", name="language_iso_639"),
    )

    job_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    )
    category: Mapped[str] = mapped_column(String(100))
    intent: Mapped[str] = mapped_column(String(100))
    priority: Mapped[str] = mapped_column(String(16))
    language: Mapped[str] = mapped_column(String(3))
    summary: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DocumentExtraction(Base):
    __tablename__ = "document_extractions"
    __table_args__ = (
        CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency_iso_4217"),
        CheckConstraint("total >= 0", name="total_not_negative"),
        CheckConstraint("tax IS NULL OR tax >= 0", name="tax_not_negative"),
    )

    job_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    )
    issuer: Mapped[str] = mapped_column(String(300))
    document_number: Mapped[str | None] = mapped_column(String(100))
    issue_date: Mapped[date]
    currency: Mapped[str] = mapped_column(String(3))
    total: Mapped[Decimal] = mapped_column(Amount)
    tax: Mapped[Decimal | None] = mapped_column(Amount)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    line_items: Mapped[list[DocumentLineItem]] = relationship(
        order_by="DocumentLineItem.position", cascade="all, delete-orphan"
    )


class DocumentLineItem(Base):
    __tablename__ = "document_line_items"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    job_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("document_extractions.job_id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int]
    description: Mapped[str] = mapped_column(Text)
    quantity: Mapped[Decimal | None] = mapped_column(Amount)
    unit_price: Mapped[Decimal | None] = mapped_column(Amount)
    amount: Mapped[Decimal] = mapped_column(Amount)

    def as_dict(self) -> dict[str, Any]:
        return {
            "description": self.description,
            "quantity": self.quantity,
            "unit_price": self.unit_price,
            "amount": self.amount,
        }
