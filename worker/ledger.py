"""Cost ledger queries: totals of LLM calls grouped by job, tenant, workflow, model or day."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Date, cast, func, select
from sqlalchemy.orm import Session

from models import LLMCall

GROUPINGS: dict[str, Any] = {
    "job": LLMCall.job_id,
    "tenant": LLMCall.tenant_id,
    "workflow": LLMCall.workflow,
    "model": LLMCall.model,
    "day": cast(LLMCall.created_at, Date),
}


@dataclass(frozen=True)
class LedgerRow:
    key: str
    calls: int
    failed_calls: int
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    reasoning_tokens: int
    cost_usd: Decimal


def totals(session: Session, by: str, since: datetime | None = None,
           tenant: str | None = None, limit: int = 100) -> list[LedgerRow]:
    """Sum every call, failed, repair and escalation calls included, per `by` group."""
    group = GROUPINGS[by]
    query = select(
        group,
        func.count(),
        func.count().filter(LLMCall.error_kind.is_not(None)),
        func.sum(LLMCall.prompt_tokens),
        func.sum(LLMCall.cached_tokens),
        func.sum(LLMCall.completion_tokens),
        func.sum(LLMCall.reasoning_tokens),
        func.sum(LLMCall.cost_usd),
    ).group_by(group).order_by(func.sum(LLMCall.cost_usd).desc()).limit(limit)
    if since is not None:
        query = query.where(LLMCall.created_at >= since)
    if tenant is not None:
        query = query.where(LLMCall.tenant_id == tenant)
    rows: Any = session.execute(query)
    return [
        LedgerRow(str(key), calls, failed, int(prompt or 0), int(cached or 0),
                  int(completion or 0), int(reasoning or 0), Decimal(cost or 0))
        for key, calls, failed, prompt, cached, completion, reasoning, cost in rows
    ]
