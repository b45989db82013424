from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

import models
from tests.support import drop_database, recreate_database, use_settings
from worker import db
from worker.migrate import downgrade, upgrade


@pytest.fixture
def empty_database(
    postgres_admin_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    name = f"sluice_migrations_{os.getpid()}"
    url = recreate_database(postgres_admin_url, name)
    use_settings(monkeypatch, database_url=url)
    yield url
    db.dispose_engine()
    drop_database(postgres_admin_url, name)


def _differences(url: str) -> list[object]:
    engine = create_engine(db.normalise_url(url))
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), models.Base.metadata)
    engine.dispose()
    return diff


def _tables(url: str) -> set[str]:
    engine = create_engine(db.normalise_url(url))
    names = set(inspect(engine).get_table_names())
    engine.dispose()
    return names


def test_upgrade_leaves_nothing_to_autogenerate(empty_database: str) -> None:
    upgrade()
    assert _differences(empty_database) == []


def test_upgrade_downgrade_upgrade(empty_database: str) -> None:
    upgrade()
    assert "jobs" in _tables(empty_database)
    downgrade("base")
    assert _tables(empty_database) == {"alembic_version"}
    upgrade()
    assert _differences(empty_database) == []


def test_api_is_not_ready_before_migrations(empty_database: str) -> None:
    from fastapi.testclient import TestClient

    from worker.api import create_app

    with TestClient(create_app()) as api:
        before = api.get("/readyz")
        upgrade()
        after = api.get("/readyz")

    assert before.status_code == 503
    assert "sluice migrate" in before.json()["error"]["message"]
    assert after.status_code == 200
