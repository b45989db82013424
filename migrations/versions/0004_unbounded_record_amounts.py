"""Store record amounts as unbounded NUMERIC, so a record keeps every validated digit.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AMOUNT_COLUMNS = (
    ("document_extractions", ("total", "tax")),
    ("document_line_items", ("quantity", "unit_price", "amount")),
)


def upgrade() -> None:
    for table, columns in AMOUNT_COLUMNS:
        for column in columns:
            op.alter_column(table, column, type_=sa.Numeric(),
                            existing_type=sa.Numeric(18, 4))


def downgrade() -> None:
    # A value beyond NUMERIC(18, 4) makes this fail instead of losing digits silently.
    for table, columns in AMOUNT_COLUMNS:
        for column in columns:
            op.alter_column(table, column, type_=sa.Numeric(18, 4),
                            existing_type=sa.Numeric())
