"""Shared fixtures: real Postgres and Redis, the simulator over HTTP, settings overrides.

Postgres and Redis are the machine's own when they answer on 127.0.0.1 (or at
SLUICE_TEST_DATABASE_URL / SLUICE_TEST_REDIS_URL); otherwise the embedded servers start,
so the suite runs on a fresh machine too.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import text

from tests.support import ThreadedServer, drop_database, recreate_database, use_settings
from worker import db
from worker.settings import get_settings

LOCAL_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
# Each run gets its own database and, on a shared Redis, one of the upper database
# numbers, so two test runs on one machine rarely meet.
TEST_DATABASE = f"sluice_test_{os.getpid()}"
LOCAL_REDIS = f"redis://127.0.0.1:6379/{8 + os.getpid() % 8}"


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def embedded_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("embedded")


@pytest.fixture(scope="session")
def postgres_admin_url(embedded_dir: Path) -> Iterator[str]:
    """A superuser URL of a real Postgres server for the whole run."""
    explicit = os.environ.get("SLUICE_TEST_DATABASE_URL")
    if explicit:
        yield explicit
        return
    if _reachable("127.0.0.1", 5432):
        yield LOCAL_POSTGRES
        return
    from worker.embedded import start_postgres

    url, server = start_postgres(embedded_dir)
    yield url.replace("/sluice?", "/postgres?").replace("postgresql+psycopg", "postgresql")
    server.cleanup()


@pytest.fixture(scope="session")
def redis_url(embedded_dir: Path) -> Iterator[str]:
    explicit = os.environ.get("SLUICE_TEST_REDIS_URL")
    if explicit:
        yield explicit
        return
    if _reachable("127.0.0.1", 6379):
        yield LOCAL_REDIS
        return
    from worker.embedded import start_redis

    url, server = start_redis(embedded_dir)
    yield url
    server.shutdown()


@pytest.fixture(scope="session")
def database_url(postgres_admin_url: str) -> Iterator[str]:
    """A migrated database shared by the run; `clean_db` empties it between tests."""
    from worker.migrate import upgrade

    url = recreate_database(postgres_admin_url, TEST_DATABASE)
    os.environ["SLUICE_DATABASE_URL"] = url
    get_settings.cache_clear()
    db.dispose_engine()
    upgrade()
    yield url
    db.dispose_engine()
    drop_database(postgres_admin_url, TEST_DATABASE)


@pytest.fixture
def clean_db(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    # Most tests submit without credentials; the intake tests turn authentication back on.
    use_settings(monkeypatch, database_url=database_url, intake_auth="off")
    yield database_url
    with db.get_engine().begin() as conn:
        conn.execute(text(
            "TRUNCATE jobs, attempts, llm_calls, ticket_classifications, document_extractions, "
            "document_line_items, review_items, api_keys, webhook_secrets CASCADE"
        ))
    db.dispose_engine()


@pytest.fixture
def clean_redis(redis_url: str) -> Iterator[str]:
    client = redis.Redis.from_url(redis_url.replace("redis+socket://", "unix://"))
    client.flushdb()
    yield redis_url
    client.flushdb()
    client.close()


@pytest.fixture
def simulator() -> Iterator[ThreadedServer]:
    from worker.simulator import create_app

    with ThreadedServer(create_app()) as server:
        yield server


@pytest.fixture
def sluice_env(
    clean_db: str, clean_redis: str, simulator: ThreadedServer, monkeypatch: pytest.MonkeyPatch,
) -> dict[str, str]:
    """Settings of a full environment: database, broker and the simulator as provider."""
    values = {
        "database_url": clean_db,
        "redis_url": clean_redis,
        "simulator_url": f"{simulator.url}/v1",
        "retry_base_delay_s": "0.2",
        "retry_max_delay_s": "1",
        # Several workers run at once in some tests; the one that checks metrics opens a port.
        "worker_metrics_port": "0",
    }
    use_settings(monkeypatch, **values)
    return {f"SLUICE_{k.upper()}": v for k, v in values.items()}

