"""Cost ledger columns, tenant budgets, deferred attempts and the route log.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Server defaults fill existing rows; they are dropped again so the models stay the
    # only source of defaults.
    op.add_column("attempts", sa.Column("route_log", postgresql.JSONB(astext_type=sa.Text()),
                                        nullable=False, server_default="[]"))
    op.add_column("jobs", sa.Column("deferrals", sa.Integer(), nullable=False,
                                    server_default="0"))
    op.add_column("llm_calls", sa.Column("tenant_id", sa.String(length=64), nullable=True))
    op.add_column("llm_calls", sa.Column("workflow", sa.String(length=100), nullable=True))
    op.execute(
        "UPDATE llm_calls SET tenant_id = jobs.tenant_id, workflow = jobs.workflow "
        "FROM jobs WHERE jobs.id = llm_calls.job_id"
    )
    op.alter_column("llm_calls", "tenant_id", nullable=False)
    op.alter_column("llm_calls", "workflow", nullable=False)
    op.add_column("llm_calls", sa.Column("reasoning_tokens", sa.Integer(), nullable=False,
                                         server_default="0"))
    op.add_column("llm_calls", sa.Column("max_tokens", sa.Integer(), nullable=True))
    op.add_column("llm_calls", sa.Column("price_date", sa.Date(), nullable=True))
    op.create_index("ix_llm_calls_tenant_id_created_at", "llm_calls",
                    ["tenant_id", "created_at"], unique=False)
    op.add_column("tenants", sa.Column("daily_budget_usd", sa.Numeric(precision=18, scale=8),
                                       nullable=True))
    op.add_column("tenants", sa.Column("monthly_budget_usd", sa.Numeric(precision=18, scale=8),
                                       nullable=True))
    for table, column in (("attempts", "route_log"), ("jobs", "deferrals"),
                          ("llm_calls", "reasoning_tokens")):
        op.alter_column(table, column, server_default=None)


def downgrade() -> None:
    op.drop_column("tenants", "monthly_budget_usd")
    op.drop_column("tenants", "daily_budget_usd")
    op.drop_index("ix_llm_calls_tenant_id_created_at", table_name="llm_calls")
    op.drop_column("llm_calls", "price_date")
    op.drop_column("llm_calls", "max_tokens")
    op.drop_column("llm_calls", "reasoning_tokens")
    op.drop_column("llm_calls", "workflow")
    op.drop_column("llm_calls", "tenant_id")
    op.drop_column("jobs", "deferrals")
    op.drop_column("attempts", "route_log")
