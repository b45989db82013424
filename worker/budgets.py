"""Tenant spend and budgets, read from the cost ledger (`llm_calls`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models import LLMCall, Tenant


@dataclass(frozen=True)
class BudgetVerdict:
    """Whether a call of `projected_usd` fits the tenant's budgets, and if not, until when."""

    allowed: bool
    period: str | None = None
    resets_at: datetime | None = None


def period_starts(now: datetime) -> tuple[datetime, datetime, datetime, datetime]:
    """Return (day start, next day, month start, next month), all UTC."""
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    month = day.replace(day=1)
    next_month = (month + timedelta(days=32)).replace(day=1)
    return day, day + timedelta(days=1), month, next_month


def spent_since(session: Session, tenant_id: str, since: datetime) -> Decimal:
    value = session.scalar(
        select(func.coalesce(func.sum(LLMCall.cost_usd), 0)).where(
            LLMCall.tenant_id == tenant_id, LLMCall.created_at >= since)
    )
    return Decimal(value or 0)


def check_budget(
    session: Session, tenant_id: str, projected_usd: Decimal, now: datetime
) -> BudgetVerdict:
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        return BudgetVerdict(True)
    day, next_day, month, next_month = period_starts(now)
    limits = (
        ("daily", tenant.daily_budget_usd, day, next_day),
        ("monthly", tenant.monthly_budget_usd, month, next_month),
    )
    for period, budget, start, resets_at in limits:
        if budget is not None and spent_since(session, tenant_id, start) + projected_usd > budget:
            return BudgetVerdict(False, period, resets_at)
    return BudgetVerdict(True)
