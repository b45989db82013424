"""`sluice costs` and `sluice tenants set-budget`: the cost ledger from a terminal."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from worker.ledger import GROUPINGS


def costs(
    by: Annotated[str, typer.Option(help=f"Group by: {', '.join(GROUPINGS)}.")] = "day",
    since: Annotated[datetime | None, typer.Option(
        help="Only calls at or after this UTC time, such as 2026-12-01.")] = None,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's calls.")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """Print LLM call totals (every attempt, repair and failed call included) and their cost."""
    from worker.db import session_scope
    from worker.ledger import totals

    if by not in GROUPINGS:
        raise typer.BadParameter(f"{by!r} is not a grouping; use one of {', '.join(GROUPINGS)}",
                                 param_hint="--by")
    with session_scope() as session:
        rows = totals(session, by, since, tenant)
    if json_output:
        for row in rows:
            typer.echo(json.dumps(asdict(row), default=str))
        return
    table = Table(title=f"LLM cost by {by}")
    for column in ("key", "calls", "failed", "prompt", "cached", "completion", "reasoning",
                   "cost (USD)"):
        table.add_column(column, justify="left" if column == "key" else "right")
    for row in rows:
        table.add_row(row.key, str(row.calls), str(row.failed_calls), str(row.prompt_tokens),
                      str(row.cached_tokens), str(row.completion_tokens),
                      str(row.reasoning_tokens), f"{row.cost_usd:.8f}")
    table.add_row("total", str(sum(r.calls for r in rows)), "", "", "", "", "",
                  f"{sum((r.cost_usd for r in rows), Decimal(0)):.8f}")
    # Piped output has no terminal width; keep job ids and dates whole anyway.
    Console(width=None if sys.stdout.isatty() else 160).print(table)


tenants_app = typer.Typer(help="Tenants: create them, rotate their credentials, set budgets.",
                          no_args_is_help=True)


@tenants_app.command("set-budget")
def set_budget(
    tenant: Annotated[str, typer.Argument(help="Tenant id, such as default.")],
    daily_usd: Annotated[str | None, typer.Option(
        help="Ceiling per UTC day in USD; 'none' removes it.")] = None,
    monthly_usd: Annotated[str | None, typer.Option(
        help="Ceiling per UTC month in USD; 'none' removes it.")] = None,
) -> None:
    """Set a tenant's spending ceilings; calls over them wait until the period resets."""
    from models import Tenant
    from worker.db import session_scope

    with session_scope() as session:
        row = session.get(Tenant, tenant)
        if row is None:
            raise typer.BadParameter(f"tenant {tenant!r} does not exist", param_hint="TENANT")
        if daily_usd is not None:
            row.daily_budget_usd = _money(daily_usd, "--daily-usd")
        if monthly_usd is not None:
            row.monthly_budget_usd = _money(monthly_usd, "--monthly-usd")
        daily, monthly = row.daily_budget_usd, row.monthly_budget_usd
        woken = wake_budget_waiters(session, tenant)
    typer.echo(f"tenant {tenant}: daily budget {_describe(daily)}, "
               f"monthly budget {_describe(monthly)}")
    if woken:
        from worker.tasks import enqueue

        for job_id in woken:
            enqueue(job_id)
        typer.echo(f"{len(woken)} job(s) waiting on this tenant's budget were sent back to "
                   "the queue to check it again")


def _describe(budget: Decimal | None) -> str:
    return "none" if budget is None else f"{budget.normalize():f} USD"


def wake_budget_waiters(session: Any, tenant: str) -> list[Any]:
    """Make jobs held by the tenant's budget due now, so a raised budget takes effect."""
    from sqlalchemy import update

    from models import Job, JobState

    rows = session.execute(
        update(Job)
        .where(Job.tenant_id == tenant, Job.state == JobState.QUEUED,
               Job.reason.like("budget_exceeded%"))
        .values(not_before=None)
        .returning(Job.id)
    )
    return [row.id for row in rows]


# The budget columns are numeric(18, 8): ten digits before the point.
MAX_BUDGET_USD = Decimal("9999999999")


def _money(value: str, option: str) -> Decimal | None:
    if value.lower() == "none":
        return None
    try:
        amount = Decimal(value)
    except ArithmeticError as exc:
        raise typer.BadParameter(f"{value!r} is not an amount such as 12.50",
                                 param_hint=option) from exc
    if not amount.is_finite():
        raise typer.BadParameter(f"{value!r} is not a finite amount such as 12.50",
                                 param_hint=option)
    if amount < 0:
        raise typer.BadParameter(f"{value} is negative; use 0 to stop all spending",
                                 param_hint=option)
    if amount > MAX_BUDGET_USD:
        raise typer.BadParameter(f"{value} is above the largest budget, {MAX_BUDGET_USD} USD; "
                                 "use 'none' for no ceiling", param_hint=option)
    return amount.quantize(Decimal("0.00000001"))
