"""The `sluice` command line."""

from __future__ import annotations

import sys

import typer

from worker.cli.jobs import jobs_app
from worker.cli.run import register_run_commands
from worker.errors import SluiceError

app = typer.Typer(
    name="sluice",
    help="Run business LLM workflows reliably: intake API, workers, simulator and demo.",
    no_args_is_help=True,
    add_completion=False,
)
register_run_commands(app)
app.add_typer(jobs_app, name="jobs")


def main() -> None:
    try:
        app()
    except SluiceError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
