"""`sluice jobs`: look at jobs and put stalled ones back on the queue."""

from __future__ import annotations

from typing import Annotated

import typer

jobs_app = typer.Typer(help="Operate on jobs: requeue the stalled ones.", no_args_is_help=True)


@jobs_app.command("requeue")
def requeue(
    grace_s: Annotated[float, typer.Option(
        help="Seconds a due job may wait before it counts as stalled.", min=0)] = 60,
) -> None:
    """Publish again every stalled job, for example after Redis was lost."""
    from worker.tasks import requeue_stalled

    typer.echo(f"requeued {requeue_stalled(grace_s)} job(s)")
