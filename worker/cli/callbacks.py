"""`sluice callbacks`: look at the callback outbox and send callbacks again."""

from __future__ import annotations

import uuid
from typing import Annotated

import typer

callbacks_app = typer.Typer(
    help="Result callbacks: list the outbox, redeliver dead or delivered callbacks.",
    no_args_is_help=True,
)


@callbacks_app.command("list")
def list_outbox(
    dead: Annotated[bool, typer.Option("--dead", help="Only callbacks whose retries ran out.")]
    = False,
    limit: Annotated[int, typer.Option(help="Rows to print at most.", min=1)] = 50,
) -> None:
    """Print the newest callbacks: id, state, attempts, event, job, target and last error."""
    from models import OutboxState
    from worker.callbacks.outbox import list_callbacks
    from worker.db import session_scope

    with session_scope() as session:
        rows = list_callbacks(session, OutboxState.DEAD if dead else None, limit)
        lines = [
            "\t".join([str(row.id), row.state.value, str(row.attempts), row.event,
                       str(row.job_id), row.next_attempt_at.isoformat(timespec="seconds"),
                       _without_query(row.target_url), (row.last_error or "")[:200]])
            for row in rows
        ]
    if not lines:
        typer.echo("no callbacks")
        return
    typer.echo("id\tstate\tattempts\tevent\tjob_id\tnext_attempt_at\ttarget\tlast_error")
    for line in lines:
        typer.echo(line)


@callbacks_app.command("redeliver")
def redeliver(
    outbox_id: Annotated[uuid.UUID, typer.Argument(help="Callback id from `sluice callbacks "
                                                         "list`.")],
) -> None:
    """Make a callback pending and due now; the next delivery run sends it again."""
    from worker.callbacks.outbox import redeliver as schedule
    from worker.db import session_scope

    with session_scope() as session:
        outbox = schedule(session, outbox_id)
        webhook_id = outbox.webhook_id
    typer.echo(f"callback {outbox_id} ({webhook_id}) is pending again")


def _without_query(url: str) -> str:
    """Drop the query string, which may carry a receiver's access token."""
    return url.split("?", 1)[0]
