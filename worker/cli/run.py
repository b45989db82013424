"""Commands that start Sluice's processes: services, migrate, api, worker, simulator, demo."""

from __future__ import annotations

import signal
import threading
from typing import Annotated

import typer

from worker.settings import get_settings


def register_run_commands(app: typer.Typer) -> None:
    app.command()(demo)
    app.command()(migrate)
    app.command()(api)
    app.command()(worker)
    app.command()(simulator)
    app.command()(services)


def demo(
    json_output: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    per_dataset: Annotated[int, typer.Option(
        help="Inputs taken from each bundled dataset (0 = all).", min=0)] = 40,
    timeout_s: Annotated[float, typer.Option(help="Seconds to wait for every job.")] = 600,
) -> None:
    """Run the pipeline end to end on bundled real tickets and invoices, then summarise."""
    from worker.demo.run import run_demo

    raise typer.Exit(run_demo(json_output=json_output, per_dataset=per_dataset,
                              timeout_s=timeout_s))


def migrate() -> None:
    """Upgrade the database schema to the latest migration."""
    from worker.logs import configure_logging
    from worker.migrate import upgrade

    configure_logging(get_settings().log_level)
    upgrade()
    typer.echo("database schema is up to date")


def api(
    host: Annotated[str | None, typer.Option(help="Address to bind; default SLUICE_API_HOST.")]
    = None,
    port: Annotated[int | None, typer.Option(help="Port; default SLUICE_API_PORT.")] = None,
) -> None:
    """Serve the intake API."""
    import uvicorn

    from worker.api import create_app
    from worker.logs import configure_logging

    settings = get_settings()
    configure_logging(settings.log_level)
    uvicorn.run(create_app(), host=host or settings.api_host, port=port or settings.api_port,
                log_config=None, access_log=False)


def worker(
    pool: Annotated[str | None, typer.Option(help="threads, prefork or solo.")] = None,
    concurrency: Annotated[int | None, typer.Option(help="Jobs run at once.", min=1)] = None,
    beat: Annotated[bool, typer.Option(
        help="Also run the scheduler that requeues stalled jobs (one per deployment).")] = False,
) -> None:
    """Start a Celery worker that runs jobs from the queue."""
    from worker.celery_app import app as celery_app
    from worker.logs import configure_logging

    settings = get_settings()
    configure_logging(settings.log_level)
    celery_app.worker_main([
        "worker",
        f"--pool={pool or settings.worker_pool}",
        f"--concurrency={concurrency or settings.worker_concurrency}",
        f"--loglevel={settings.log_level}",
        "--queues=sluice",
        "--without-mingle",
        "--without-gossip",
        *(["--beat", f"--schedule={settings.data_dir / 'beat-schedule'}"] if beat else []),
    ])


def simulator(
    host: Annotated[str | None, typer.Option(help="Address to bind.")] = None,
    port: Annotated[int | None, typer.Option(help="Port; 0 picks a free one.")] = None,
    latency_ms: Annotated[float, typer.Option(help="Delay added to every answer.")] = 0.0,
) -> None:
    """Serve the OpenAI-compatible simulator with its rule-based stand-in model."""
    from worker.logs import configure_logging
    from worker.simulator import SimulatorSettings
    from worker.simulator.server import serve

    settings = get_settings()
    configure_logging(settings.log_level)
    serve(host or settings.simulator_host, settings.simulator_port if port is None else port,
          SimulatorSettings(latency_ms=latency_ms))


def services() -> None:
    """Start embedded Postgres and Redis for unset URLs, print the URLs, run until Ctrl-C."""
    from worker.embedded import ensure_services
    from worker.migrate import upgrade

    running = ensure_services()
    upgrade()
    typer.echo(f"export SLUICE_DATABASE_URL='{running.database_url}'")
    typer.echo(f"export SLUICE_REDIS_URL='{running.redis_url}'")
    typer.echo("# embedded services run until this command stops (Ctrl-C)", err=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        running.stop()
