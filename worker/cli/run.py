"""Commands that start Sluice's processes: services, migrate, api, worker, simulator, demo."""

from __future__ import annotations

import signal
import threading
from typing import Annotated

import typer

from worker.settings import Settings, get_settings


def check_startup(needs_redis: bool = False) -> Settings:
    """Fail before serving anything when settings, config file or URLs are wrong."""
    from worker.celery_app import broker_url
    from worker.config import get_config
    from worker.db import database_url
    from worker.review.settings import get_review_settings

    settings = get_settings()
    get_review_settings()
    get_config()
    database_url()
    if needs_redis:
        broker_url()
    return settings


def prepare_metrics_dir(settings: Settings) -> None:
    """Give this worker an empty folder for its processes' metric files.

    prometheus_client reads PROMETHEUS_MULTIPROC_DIR when it is first imported, so this
    runs before anything imports the metrics; an operator's own value is kept.
    """
    import os
    import shutil

    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        return
    folder = settings.data_dir.resolve() / "metrics" / str(os.getpid())
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)


def register_run_commands(app: typer.Typer) -> None:
    app.command()(demo)
    app.command()(migrate)
    app.command()(api)
    app.command()(worker)
    app.command()(simulator)
    app.command()(services)
    app.command()(flower)
    app.command()(doctor)


def demo(
    json_output: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    per_dataset: Annotated[int, typer.Option(
        help="Inputs taken from each bundled dataset (0 = all).", min=0)] = 40,
    timeout_s: Annotated[float, typer.Option(help="Seconds to wait for every job.")] = 600,
) -> None:
    """Run the pipeline end to end on bundled real tickets and invoices, then summarise."""
    from worker.config import get_config
    from worker.demo.run import run_demo

    get_config()
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

    settings = check_startup()
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
    settings = check_startup(needs_redis=True)
    prepare_metrics_dir(settings)

    from worker.celery_app import app as celery_app
    from worker.health import start_health_server
    from worker.logs import configure_logging

    configure_logging(settings.log_level)
    if settings.worker_metrics_port:
        start_health_server(settings.worker_metrics_port)
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
    latency_ms: Annotated[float, typer.Option(
        help="Delay added to every response, in ms.", min=0)] = 0.0,
    rpm: Annotated[int | None, typer.Option(
        help="Requests per minute; unlimited when unset.", min=1)] = None,
    tpm: Annotated[int | None, typer.Option(
        help="Tokens per minute; unlimited when unset.", min=1)] = None,
    request_burst_s: Annotated[float, typer.Option(
        help="Capacity of the request bucket in seconds of RPM (at least 1 request).")] = 1.0,
    token_burst_s: Annotated[float, typer.Option(
        help="Capacity of the token bucket in seconds of TPM.")] = 60.0,
    fault_seed: Annotated[int, typer.Option(help="Seed of the RNG that draws faults.")] = 0,
    server_error_rate: Annotated[float, typer.Option(
        help="Share of admitted requests that get HTTP 500 or 503.", min=0, max=1)] = 0.0,
    slow_rate: Annotated[float, typer.Option(
        help="Share of admitted requests delayed by --slow-ms.", min=0, max=1)] = 0.0,
    slow_ms: Annotated[float, typer.Option(
        help="Extra delay of a slow response, in ms.", min=0)] = 3000.0,
    stall_rate: Annotated[float, typer.Option(
        help="Share of admitted requests that hold the connection for --stall-s.",
        min=0, max=1)] = 0.0,
    stall_s: Annotated[float, typer.Option(
        help="Time a stalled request holds the connection before its response, in s.",
        min=0)] = 120.0,
    error_in_200_rate: Annotated[float, typer.Option(
        help="Share of admitted requests that get HTTP 200 with an error body.",
        min=0, max=1)] = 0.0,
    truncated_rate: Annotated[float, typer.Option(
        help="Share of admitted requests whose JSON is cut mid-way.", min=0, max=1)] = 0.0,
    malformed_json_rate: Annotated[float, typer.Option(
        help="Share of admitted requests that get prose in place of JSON.",
        min=0, max=1)] = 0.0,
    schema_violation_rate: Annotated[float, typer.Option(
        help="Share of admitted requests that get JSON breaking the output contract.",
        min=0, max=1)] = 0.0,
) -> None:
    """Serve the OpenAI-compatible simulator with its rule-based stand-in model.

    Rate limits work as OpenAI's do; fault rates must add up to at most 1.
    """
    from pydantic import ValidationError

    from worker.logs import configure_logging
    from worker.simulator import SimulatorSettings
    from worker.simulator.server import serve

    try:
        simulator_settings = SimulatorSettings(
            latency_ms=latency_ms, rpm=rpm, tpm=tpm, request_burst_s=request_burst_s,
            token_burst_s=token_burst_s, fault_seed=fault_seed,
            server_error_rate=server_error_rate, slow_rate=slow_rate, slow_ms=slow_ms,
            stall_rate=stall_rate, stall_s=stall_s, error_in_200_rate=error_in_200_rate,
            truncated_rate=truncated_rate, malformed_json_rate=malformed_json_rate,
            schema_violation_rate=schema_violation_rate,
        )
    except ValidationError as exc:
        for error in exc.errors():
            field = "--" + "-".join(str(part) for part in error["loc"]).replace("_", "-")
            where = f"{field}: " if error["loc"] else ""
            # A ValueError from a validator keeps its own message, without Pydantic's prefix.
            message = str(error.get("ctx", {}).get("error", error["msg"]))
            typer.echo(f"invalid simulator option: {where}{message}", err=True)
        raise typer.Exit(2) from exc
    settings = get_settings()
    configure_logging(settings.log_level)
    serve(host or settings.simulator_host, settings.simulator_port if port is None else port,
          simulator_settings)


def services() -> None:
    """Start embedded Postgres and Redis for unset URLs, print the URLs, run until Ctrl-C."""
    from worker.embedded import ensure_services, publish_services
    from worker.migrate import upgrade

    running = ensure_services()
    upgrade()
    state_file = publish_services(running, get_settings().data_dir)
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
        state_file.unlink(missing_ok=True)
        running.stop()


def flower(
    port: Annotated[int, typer.Option(help="Port of the Flower web UI.")] = 5555,
    address: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
) -> None:
    """Start Flower against the configured broker, with basic authentication."""
    import os

    from worker.celery_app import app as celery_app

    check_startup(needs_redis=True)
    credentials = os.environ.get("FLOWER_BASIC_AUTH")
    if not credentials:
        raise typer.BadParameter(
            "set FLOWER_BASIC_AUTH=user:password (Flower's own variable); Sluice does not "
            "start Flower without authentication", param_hint="FLOWER_BASIC_AUTH")
    celery_app.start(["flower", f"--port={port}", f"--address={address}",
                      f"--basic-auth={credentials}"])


def doctor() -> None:
    """Check settings, config file, database, migrations, Redis and every provider."""
    from rich.console import Console
    from rich.table import Table

    from worker.doctor import run_checks

    checks = run_checks()
    table = Table(title="sluice doctor")
    for column in ("check", "result", "detail", "how to fix"):
        table.add_column(column)
    for check in checks:
        table.add_row(check.name, "ok" if check.ok else "FAILED", check.detail, check.fix)
    Console(width=160).print(table)
    raise typer.Exit(0 if all(check.ok for check in checks) else 1)
