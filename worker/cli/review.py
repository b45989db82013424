"""`sluice review`: reviewer accounts and review items from a terminal."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

review_app = typer.Typer(
    help="Review items: reviewer accounts, listing, resolving and exporting.",
    no_args_is_help=True,
)


@review_app.command("add-reviewer")
def add_reviewer(
    username: Annotated[str, typer.Argument(help="Login name: letters, digits, . _ @ -")],
    password_stdin: Annotated[bool, typer.Option(
        "--password-stdin", help="Read the password from the first line of standard input "
        "instead of prompting.")] = False,
) -> None:
    """Create a reviewer who can log in to the review pages under /review."""
    from worker.db import session_scope
    from worker.review.accounts import add_reviewer as create

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    with session_scope() as session:
        create(session, username, password)
    typer.echo(f"reviewer {username} added")


@review_app.command("disable-reviewer")
def disable_reviewer(
    username: Annotated[str, typer.Argument(help="The reviewer's login name.")],
    enable: Annotated[bool, typer.Option(
        "--enable", help="Enable the account again instead.")] = False,
) -> None:
    """Stop a reviewer from logging in; their open sessions stop working at once."""
    from worker.db import session_scope
    from worker.review.accounts import set_disabled

    with session_scope() as session:
        set_disabled(session, username, disabled=not enable)
    typer.echo(f"reviewer {username} {'enabled' if enable else 'disabled'}")


@review_app.command("list")
def list_items(
    workflow: Annotated[str | None, typer.Option(help="Only this workflow's items.")] = None,
    reason: Annotated[str | None, typer.Option(help="Only this reason code.")] = None,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's items.")] = None,
    older_than_h: Annotated[float | None, typer.Option(
        help="Only items waiting at least this many hours.", min=0)] = None,
    limit: Annotated[int, typer.Option(help="Rows to print at most.", min=1)] = 100,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """Print open review items, oldest first."""
    from rich.console import Console
    from rich.table import Table

    from models.base import utcnow
    from worker.db import session_scope
    from worker.review.queries import QueueFilter, open_queue

    with session_scope() as session:
        queue = open_queue(session, QueueFilter(workflow, reason, tenant, older_than_h),
                           utcnow(), limit)
    if json_output:
        for row in queue.rows:
            typer.echo(json.dumps({
                "item_id": str(row.item_id), "job_id": str(row.job_id),
                "workflow": row.workflow, "tenant": row.tenant, "reason": row.reason,
                "age_s": round(row.age_s), "claimed_by": row.claimed_by}))
        return
    table = Table(title=f"Open review items: {queue.total}")
    for column in ("item", "job", "workflow", "tenant", "reason", "age (h)", "claimed by"):
        table.add_column(column)
    for row in queue.rows:
        table.add_row(str(row.item_id), str(row.job_id), row.workflow, row.tenant, row.reason,
                      f"{row.age_s / 3600:.1f}", row.claimed_by or "")
    Console().print(table)
    counts = ", ".join(f"{name} {count}" for name, count in queue.counts_by_reason.items())
    typer.echo(f"per reason: {counts or 'none'}")


@review_app.command("show")
def show(item: Annotated[str, typer.Argument(help="Review item id or job id.")]) -> None:
    """Print one item as JSON: the job input, the raw output, its errors and audit trail."""
    from models.base import utcnow
    from worker.db import session_scope
    from worker.review.queries import find_item_id, item_detail

    with session_scope() as session:
        detail = item_detail(session, find_item_id(session, item), utcnow())
    typer.echo(json.dumps(_detail_json(detail), indent=2, default=str, ensure_ascii=False))


def _detail_json(detail: Any) -> dict[str, Any]:
    item, job = detail.item, detail.job
    return {
        "item_id": item.id, "job_id": job.id, "workflow": job.workflow,
        "tenant": job.tenant_id, "state": item.state.value, "reason": item.reason,
        "job_state": job.state.value, "claimed_by": detail.claimed_by,
        "input": job.input, "raw_output": item.raw_output, "errors": item.errors,
        "approved_output": item.approved_output, "resolved_by": item.resolved_by,
        "resolution_note": item.resolution_note,
        "attempts": [{"number": attempt.number, "outcome": attempt.outcome,
                      "reason": attempt.reason,
                      "calls": [{"model": call.model, "purpose": call.purpose,
                                 "cost_usd": call.cost_usd,
                                 "validation_errors": call.validation_errors}
                                for call in attempt.calls]}
                     for attempt in detail.attempts],
        "events": detail.events,
    }


@review_app.command("resolve")
def resolve(
    item: Annotated[str, typer.Argument(help="Review item id or job id.")],
    reviewer: Annotated[str, typer.Option(
        help="Username of the reviewer this action is recorded for.")],
    approve: Annotated[Path | None, typer.Option(
        help="JSON file with the corrected output; validated like model output.",
        exists=True, dir_okay=False, readable=True)] = None,
    reject: Annotated[str | None, typer.Option(
        help="Reject the item with this reason; the job fails.")] = None,
) -> None:
    """Approve a corrected output or reject an item, claiming it for REVIEWER first."""
    if (approve is None) == (reject is None):
        raise typer.BadParameter("give exactly one of --approve FILE.json or --reject REASON")
    raw_output = approve.read_text(encoding="utf-8") if approve is not None else None
    if not _resolve(item, reviewer, raw_output, reject):
        raise typer.Exit(1)


def _resolve(item_text: str, username: str, raw_output: str | None,
             reject_reason: str | None) -> bool:
    from sqlalchemy import select

    from models import Reviewer, ReviewItem
    from models.base import utcnow
    from worker.config import get_config
    from worker.db import session_scope
    from worker.review import service
    from worker.review.queries import find_item_id
    from worker.review.settings import get_review_settings

    with session_scope() as session:
        reviewer = session.scalar(select(Reviewer).where(Reviewer.username == username))
        if reviewer is None or reviewer.disabled:
            raise typer.BadParameter(f"reviewer {username!r} does not exist or is disabled",
                                     param_hint="--reviewer")
        item_id = find_item_id(session, item_text)
        before = session.get(ReviewItem, item_id)
        held_before = (before is not None and before.claimed_by_id == reviewer.id
                       and service.claim_live(before, utcnow()))
        service.claim(session, item_id, reviewer, get_review_settings().claim_ttl_s)
        if reject_reason is not None:
            service.reject(session, item_id, reviewer, reject_reason)
            typer.echo(f"review item {item_id} rejected; its job failed")
            return True
        assert raw_output is not None
        result = service.approve(session, item_id, reviewer, get_config(), raw_output)
        if not result.ok and not held_before:
            # The command claimed the item only to act on it; others may take it now.
            service.release(session, item_id, reviewer)
    if not result.ok:
        typer.echo(f"review item {item_id} not approved; the output is invalid:", err=True)
        for issue in result.issues:
            typer.echo(f"  {issue}", err=True)
        return False
    typer.echo(f"review item {item_id} approved; the record is stored and the job succeeded")
    return True


@review_app.command("export")
def export(
    path: Annotated[Path, typer.Argument(help="JSONL file to write; replaced if it exists.",
                                         dir_okay=False)],
    workflow: Annotated[str | None, typer.Option(help="Only this workflow's items.")] = None,
) -> None:
    """Write approved items as evaluation cases, one JSON object a line."""
    from worker.db import session_scope
    from worker.review.queries import export_cases

    count = 0
    with session_scope() as session, path.open("w", encoding="utf-8") as out:
        for case in export_cases(session, workflow):
            out.write(json.dumps(case, ensure_ascii=False, default=str) + "\n")
            count += 1
    typer.echo(f"wrote {count} case(s) to {path}")
