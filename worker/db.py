"""Database engine and sessions.

One engine per process. A Celery prefork child must not reuse a connection pool inherited
from its parent, so `reset_engine()` runs in each child after fork (see `worker.celery_app`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker

from worker.errors import ConfigError
from worker.settings import get_settings

_engine: Engine | None = None
_engine_pid: int | None = None
_sessions: sessionmaker[Session] | None = None


def normalise_url(url: str) -> str:
    """Pin the psycopg 3 driver, whatever scheme spelling the user wrote."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    raise ConfigError(
        f"SLUICE_DATABASE_URL={url.split('@')[-1]!r} is not a PostgreSQL URL; "
        "use postgresql://user:password@host:5432/dbname"
    )


def database_url() -> str:
    url = get_settings().database_url
    if not url:
        raise ConfigError(
            "SLUICE_DATABASE_URL is not set; set it, or start Sluice through a command "
            "that starts the embedded Postgres (sluice demo, sluice services)"
        )
    return normalise_url(url)


def get_engine() -> Engine:
    """Return this process's engine, creating a fresh one after a fork."""
    global _engine, _engine_pid, _sessions
    if _engine is None or _engine_pid != os.getpid():
        _engine = create_engine(database_url(), pool_pre_ping=True, pool_size=10, max_overflow=20)
        _engine_pid = os.getpid()
        _sessions = sessionmaker(_engine, expire_on_commit=False)
    return _engine


def reset_engine() -> None:
    """Forget the inherited engine without closing the parent's connections."""
    global _engine, _engine_pid, _sessions
    if _engine is not None and _engine_pid != os.getpid():
        _engine.dispose(close=False)
    _engine = _engine_pid = _sessions = None


def dispose_engine() -> None:
    global _engine, _engine_pid, _sessions
    if _engine is not None:
        _engine.dispose()
    _engine = _engine_pid = _sessions = None


@contextmanager
def session_scope() -> Iterator[Session]:
    """Yield a session that commits on success and rolls back on any exception."""
    get_engine()
    assert _sessions is not None
    session = _sessions()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
