"""`sluice jobs`: look at jobs and put stalled ones back on the queue."""

from __future__ import annotations

from typing import Annotated

import typer

jobs_app = typer.Typer(help="Inspect and requeue jobs.", no_args_is_help=True)


@jobs_app.command("requeue")
def requeue(
    older_than_s: Annotated[float, typer.Option(
        help="Only jobs waiting in received or queued for longer than this.", min=0)] = 60,
) -> None:
    """Publish again every job left waiting, for example after Redis was lost."""
    from worker.db import session_scope
    from worker.pipeline import store
    from worker.tasks import enqueue

    with session_scope() as session:
        job_ids = store.stalled_jobs(session, older_than_s)
    for job_id in job_ids:
        enqueue(job_id)
    typer.echo(f"requeued {len(job_ids)} job(s)")
