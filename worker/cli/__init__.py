"""The `sluice` command line."""

from __future__ import annotations

import sys

import typer
from pydantic import ValidationError

from worker.cli.callbacks import callbacks_app
from worker.cli.costs import costs
from worker.cli.jobs import jobs_app
from worker.cli.review import review_app
from worker.cli.run import register_run_commands
from worker.cli.tenants import tenants_app
from worker.errors import SluiceError

app = typer.Typer(
    name="sluice",
    help="Run business LLM workflows reliably: intake API, workers, simulator and demo.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
register_run_commands(app)
app.add_typer(jobs_app, name="jobs")
app.add_typer(tenants_app, name="tenants")
app.add_typer(callbacks_app, name="callbacks")
app.add_typer(review_app, name="review")
app.command()(costs)


def main() -> None:
    try:
        app()
    except SluiceError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except ValidationError as exc:
        typer.echo(f"error: {describe_settings_error(exc)}", err=True)
        sys.exit(2)


def describe_settings_error(exc: ValidationError) -> str:
    """Name each invalid SLUICE_* variable with the value it had and what is wrong."""
    lines = ["invalid settings:"]
    for error in exc.errors():
        variable = "SLUICE_" + "_".join(str(part) for part in error["loc"]).upper()
        if exc.title == "ReviewSettings":
            variable = "SLUICE_REVIEW_" + variable.removeprefix("SLUICE_")
        message = error["msg"].removeprefix("Value error, ")
        lines.append(f"  {variable}={error.get('input')!r}: {message}")
    return "\n".join(lines)
