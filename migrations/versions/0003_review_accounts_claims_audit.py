"""Reviewer accounts, review claims, the review audit trail and the route override.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The partial index below compares with 'open' only, so the new enum value may be
    # added in the same transaction (PostgreSQL 12 and later).
    op.execute("ALTER TYPE review_state ADD VALUE IF NOT EXISTS 'retried'")
    op.create_table(
        "app_secrets",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_app_secrets")),
    )
    op.create_table(
        "reviewers",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("username", sa.String(length=100), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reviewers")),
        sa.UniqueConstraint("username", name=op.f("uq_reviewers_username")),
    )
    op.create_table(
        "review_events",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("item_id", sa.Uuid(), nullable=False),
        sa.Column("reviewer_id", sa.Uuid(), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("detail", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["item_id"], ["review_items.id"],
                                name=op.f("fk_review_events_item_id_review_items"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["reviewer_id"], ["reviewers.id"],
                                name=op.f("fk_review_events_reviewer_id_reviewers")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_events")),
    )
    op.create_index("ix_review_events_item_id_at", "review_events", ["item_id", "at"],
                    unique=False)
    op.add_column("jobs", sa.Column("route_override", sa.String(length=100), nullable=True))
    op.add_column("review_items", sa.Column("claimed_by_id", sa.Uuid(), nullable=True))
    op.add_column("review_items", sa.Column("claim_expires_at", sa.DateTime(timezone=True),
                                            nullable=True))
    op.add_column("review_items", sa.Column("approved_output",
                                            postgresql.JSONB(astext_type=sa.Text()),
                                            nullable=True))
    op.create_foreign_key(op.f("fk_review_items_claimed_by_id_reviewers"), "review_items",
                          "reviewers", ["claimed_by_id"], ["id"])
    # A job sent back to the queue keeps its old item and may get a new one, so job_id is
    # unique among open items only.
    op.drop_constraint(op.f("uq_review_items_job_id"), "review_items", type_="unique")
    op.create_index(op.f("ix_review_items_job_id"), "review_items", ["job_id"], unique=False)
    op.create_index("uq_review_items_job_id_open", "review_items", ["job_id"], unique=True,
                    postgresql_where=sa.text("state = 'open'"))


def downgrade() -> None:
    # Retried items are superseded history; 0002 allows one item per job, so they go.
    op.execute("DELETE FROM review_items WHERE state = 'retried'")
    op.drop_index("uq_review_items_job_id_open", table_name="review_items",
                  postgresql_where=sa.text("state = 'open'"))
    op.drop_index(op.f("ix_review_items_job_id"), table_name="review_items")
    op.create_unique_constraint(op.f("uq_review_items_job_id"), "review_items", ["job_id"])
    op.drop_constraint(op.f("fk_review_items_claimed_by_id_reviewers"), "review_items",
                       type_="foreignkey")
    op.drop_column("review_items", "approved_output")
    op.drop_column("review_items", "claim_expires_at")
    op.drop_column("review_items", "claimed_by_id")
    op.drop_column("jobs", "route_override")
    op.drop_index("ix_review_events_item_id_at", table_name="review_events")
    op.drop_table("review_events")
    op.drop_table("reviewers")
    op.drop_table("app_secrets")
    # PostgreSQL cannot drop an enum value, so the type is rebuilt without 'retried'.
    op.execute("ALTER TYPE review_state RENAME TO review_state_0003")
    op.execute("CREATE TYPE review_state AS ENUM ('open', 'approved', 'rejected')")
    op.execute("ALTER TABLE review_items ALTER COLUMN state TYPE review_state "
               "USING state::text::review_state")
    op.execute("DROP TYPE review_state_0003")
