"""`sluice doctor`: check settings, config, database, migrations, Redis and providers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import httpx
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from worker.config import SluiceConfig, get_config
from worker.db import get_engine
from worker.errors import SluiceError
from worker.migrate import alembic_config
from worker.redis_client import get_redis


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def check_config() -> Check:
    try:
        config = get_config()
    except SluiceError as exc:
        return Check("config", False, str(exc), "fix the key named above")
    return Check("config", True, f"{len(config.workflows)} workflows, "
                 f"{len(config.providers)} providers")


def check_database() -> Check:
    try:
        with get_engine().connect() as conn:
            conn.execute(text("SELECT 1"))
    except SluiceError as exc:
        return Check("database", False, str(exc), "set SLUICE_DATABASE_URL")
    except Exception as exc:
        return Check("database", False, f"cannot connect: {type(exc).__name__}: {exc}",
                     "check SLUICE_DATABASE_URL and that Postgres is running")
    return Check("database", True, "reachable")


def check_migrations() -> Check:
    try:
        head = ScriptDirectory.from_config(alembic_config()).get_current_head()
        with get_engine().connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
    except Exception as exc:
        return Check("migrations", False, f"cannot read: {type(exc).__name__}",
                     "fix the database check first")
    if current != head:
        return Check("migrations", False, f"database at {current}, code at {head}",
                     "run `sluice migrate` before starting new workers")
    return Check("migrations", True, f"at head {head}")


def check_redis() -> Check:
    try:
        get_redis().ping()
    except SluiceError as exc:
        return Check("redis", False, str(exc), "set SLUICE_REDIS_URL")
    except Exception as exc:
        return Check("redis", False, f"cannot connect: {type(exc).__name__}: {exc}",
                     "check SLUICE_REDIS_URL and that Redis is running")
    return Check("redis", True, "reachable")


def check_providers(config: SluiceConfig) -> list[Check]:
    """GET each provider's /models with its key: a cheap call every compatible API has."""
    checks = []
    used = {target.model.provider for workflow in config.workflows
            for step in config.route_steps(workflow) for target in step}
    for key, provider in config.providers.items():
        name = f"provider {key}"
        if key not in used:
            checks.append(Check(name, True, "no workflow routes to it; not checked"))
            continue
        if provider.api_key_env and not provider.api_key():
            checks.append(Check(name, False, f"{provider.api_key_env} is not set",
                                f"export {provider.api_key_env}, or leave the provider "
                                "unused"))
            continue
        try:
            response = httpx.get(f"{provider.base_url.rstrip('/')}/models", timeout=5,
                                 headers={"Authorization": f"Bearer {provider.api_key()}"})
        except httpx.HTTPError as exc:
            fix = ("start `sluice simulator` and set SLUICE_SIMULATOR_URL" if provider.simulated
                   else "check base_url and the network")
            checks.append(Check(name, False, f"{provider.base_url}: {type(exc).__name__}", fix))
            continue
        ok = response.status_code < 400
        checks.append(Check(name, ok, f"{provider.base_url}: HTTP {response.status_code}",
                            "" if ok else "check the API key and base_url"))
    return checks


def run_checks() -> list[Check]:
    steps: list[Callable[[], Check]] = [check_config, check_database, check_migrations,
                                        check_redis]
    checks = [step() for step in steps]
    if checks[0].ok:
        checks.extend(check_providers(get_config()))
    return checks
