"""Helpers the fixtures and tests share."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
import uvicorn

from worker import config as config_module
from worker import db
from worker.pipeline.run import reset_services
from worker.redis_client import reset_redis
from worker.settings import get_settings


def _with_database(admin_url: str, name: str) -> str:
    base, _, query = admin_url.partition("?")
    base = base.rsplit("/", 1)[0] + "/" + name
    return base + ("?" + query if query else "")


def drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def recreate_database(admin_url: str, name: str) -> str:
    drop_database(admin_url, name)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return _with_database(admin_url, name)


def use_settings(monkeypatch: pytest.MonkeyPatch, **values: Any) -> None:
    """Set SLUICE_* variables for this test and drop every cached object built from them."""
    for key, value in values.items():
        monkeypatch.setenv(f"SLUICE_{key.upper()}", str(value))
    get_settings.cache_clear()
    config_module.get_config.cache_clear()
    db.dispose_engine()
    reset_redis()
    reset_services()


class ThreadedServer:
    """A uvicorn server on a free loopback port, run in a daemon thread."""

    def __init__(self, app: Any) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None,
                                access_log=False, lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ThreadedServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise TimeoutError("test server did not start within 10 s")
            time.sleep(0.01)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


class ScriptedClient:
    """A provider client that returns prepared answers in order, for seam-level tests.

    Each script entry is either a `(content, finish_reason)` pair or a ProviderError.
    """

    def __init__(self, script: list[Any]) -> None:
        self.script = list(script)
        self.requests: list[dict[str, Any]] = []

    def complete(self, provider_key: str, provider: Any, model: Any, messages: Any,
                 response_format: Any, max_tokens: int, temperature: float) -> Any:
        from worker.providers import Completion

        self.requests.append({"model": model.name, "messages": messages,
                              "max_tokens": max_tokens})
        entry = self.script.pop(0)
        if isinstance(entry, Exception):
            raise entry
        content, finish_reason = entry
        return Completion(content=content, finish_reason=finish_reason, prompt_tokens=100,
                          completion_tokens=20, cached_tokens=0, reasoning_tokens=0,
                          latency_ms=5, http_status=200)


def scripted(script: list[Any]) -> tuple[ScriptedClient, Any]:
    """Return a scripted client and pipeline services that use it and never sleep."""
    from worker.pipeline.calls import Services

    client = ScriptedClient(script)
    return client, Services(client=client, sleep=lambda _: None, jitter=lambda: 0.0)


def submit(workflow: str, job_input: dict[str, Any], tenant: str = "default") -> Any:
    """Store a job as the intake API does, without publishing it; return its id."""
    from worker.db import session_scope
    from worker.pipeline import store

    with session_scope() as session:
        return store.create_job(session, tenant, workflow, job_input, None).id


class RoutedClient(ScriptedClient):
    """A scripted client with one script per model name."""

    def __init__(self, scripts: dict[str, list[Any]]) -> None:
        super().__init__([])
        self.scripts = {name: list(script) for name, script in scripts.items()}

    def complete(self, provider_key: str, provider: Any, model: Any, messages: Any,
                 response_format: Any, max_tokens: int, temperature: float) -> Any:
        self.script = self.scripts[model.name]
        try:
            return super().complete(provider_key, provider, model, messages, response_format,
                                    max_tokens, temperature)
        finally:
            self.scripts[model.name] = self.script


FALLBACK_CONFIG = """
[providers.backup]
base_url = "http://127.0.0.1:9/v1"
region = "local"
simulated = true

[models.backup-small]
provider = "backup"
name = "backup-small"
context_window = 16384
max_output_tokens = 1024
input_usd_per_mtok = "0.20"
output_usd_per_mtok = "0.80"
price_date = 2026-11-01
"""


def write_config(directory: Any, extra: str = "", replace: dict[str, str] | None = None) -> Any:
    """Write the bundled config plus `extra` TOML, with text replacements, to a file."""
    from worker.config import default_config_path

    text = default_config_path().read_text(encoding="utf-8")
    for old, new in (replace or {}).items():
        assert old in text, old
        text = text.replace(old, new)
    path = directory / "sluice.toml"
    path.write_text(text + extra, encoding="utf-8")
    return path


def start_worker(env: dict[str, str], log_path: Path, concurrency: int = 4,
                 *extra: str) -> subprocess.Popen[bytes]:
    """Start `sluice worker` as a child process with its output in `log_path`."""
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "worker", "worker", "--pool", "threads",
             "--concurrency", str(concurrency), *extra],
            env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
        )


def stop_worker(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

