"""Checks made before every provider request: request budget, cost ceiling, tenant budget."""

from __future__ import annotations

from decimal import Decimal

from models.base import utcnow
from worker import costs
from worker.budgets import check_budget
from worker.config import Target
from worker.db import session_scope
from worker.pipeline.context import Context, Deferred, Stopped
from worker.settings import Settings

REQUEST_BUDGET_EXHAUSTED = "request_budget_exhausted"
COST_CEILING = "cost_ceiling"
BUDGET_EXCEEDED = "budget_exceeded"


def check_before_call(
    context: Context, target: Target, prompt_tokens: int, max_tokens: int, settings: Settings
) -> None:
    """Raise Stopped or Deferred when this request must not be sent now."""
    if context.requests_made >= settings.max_requests_per_job:
        raise Stopped(REQUEST_BUDGET_EXHAUSTED,
                      f"job made {context.requests_made} provider requests, the maximum "
                      f"(SLUICE_MAX_REQUESTS_PER_JOB)")
    projected = costs.price_call(target.model, prompt_tokens, max_tokens)
    _check_cost_ceiling(context, projected)
    _check_tenant_budget(context, projected, settings)


def _check_cost_ceiling(context: Context, projected: Decimal) -> None:
    ceiling = context.workflow.config.max_cost_usd
    if ceiling is not None and context.cost_usd + projected > ceiling:
        raise Stopped(COST_CEILING,
                      f"job has cost {context.cost_usd} USD and the next call may cost up to "
                      f"{projected} USD, over the workflow's max_cost_usd of {ceiling}")


def _check_tenant_budget(context: Context, projected: Decimal, settings: Settings) -> None:
    now = utcnow()
    with session_scope() as session:
        verdict = check_budget(session, context.tenant_id, projected, now)
    if verdict.allowed:
        return
    assert verdict.resets_at is not None
    wait_s = min((verdict.resets_at - now).total_seconds(), settings.budget_recheck_s)
    raise Deferred(f"{BUDGET_EXCEEDED}_{verdict.period}", max(1.0, wait_s))
