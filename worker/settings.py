"""Process settings, read once from `SLUICE_*` environment variables.

Everything that differs between deployments (URLs, ports, paths, time limits) lives here.
What a user edits about providers, models and workflows lives in the config file
(see `worker.config`), whose path is one of these settings.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    """Validated settings of one Sluice process."""

    model_config = SettingsConfigDict(env_prefix="SLUICE_", extra="forbid", frozen=True)

    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of Postgres. Unset: an embedded Postgres under data_dir.",
    )
    redis_url: str | None = Field(
        default=None,
        description="Redis URL for the Celery broker. Unset: an embedded Redis under data_dir.",
    )
    config_file: Path | None = Field(
        default=None,
        description="Providers, models and workflows (TOML). Unset: ./sluice.toml if present, "
        "else the bundled default that routes to the simulator.",
    )
    data_dir: Path = Field(default=Path(".sluice"), description="Embedded services' data.")
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=0, le=65535)
    simulator_host: str = "127.0.0.1"
    simulator_port: int = Field(default=8100, ge=0, le=65535)
    simulator_url: str | None = Field(
        default=None,
        description="Base URL of a running simulator; overrides the simulator provider's URL.",
    )
    worker_pool: str = Field(default="threads", description="Celery pool: threads or prefork.")
    worker_metrics_port: int = Field(
        default=9808, ge=0, le=65535,
        description="Port of the worker's /metrics, /healthz and /readyz; 0 turns it off.",
    )
    worker_concurrency: int = Field(default=16, ge=1, le=1000)
    job_lease_s: int = Field(
        default=1200,
        ge=10,
        description="How long a running job is owned by one worker before another may take "
        "it; keep it above the task time limit (900 s) so a slow job is never run twice.",
    )
    max_attempts: int = Field(
        default=3, ge=1, le=20, description="Attempts per job before it goes to review."
    )
    max_requests_per_job: int = Field(
        default=16, ge=1, le=200,
        description="Provider requests one job may make over all its attempts, whatever "
        "layer retries; past it the job goes to review.",
    )
    call_attempts: int = Field(
        default=3, ge=1, le=10,
        description="Tries of one LLM call in place, on transient failures with short waits.",
    )
    in_place_max_wait_s: float = Field(
        default=5.0, ge=0,
        description="Longest wait a worker sleeps through while holding its slot; a longer "
        "one (rate limit, Retry-After) gives the slot back and the job comes back later.",
    )
    budget_recheck_s: float = Field(
        default=300, gt=0,
        description="How often a job held by a spent tenant budget checks the budget again.",
    )
    retry_base_delay_s: float = Field(default=2.0, gt=0)
    retry_max_delay_s: float = Field(
        default=60.0,
        gt=0,
        description="Upper bound of one retry delay; kept far below the broker's "
        "visibility timeout so a delayed task is never delivered twice.",
    )
    stalled_grace_s: float = Field(
        default=60, gt=0,
        description="Seconds a due job may wait without a worker before it is published again.",
    )
    reconcile_every_s: float = Field(default=30, gt=0)
    max_input_bytes: int = Field(default=256_000, ge=1_000)
    intake_auth: Literal["required", "off"] = Field(
        default="required",
        description="required: every /v1 request needs a tenant API key. off: a request "
        "without an Authorization header belongs to the default tenant, unsigned; for local "
        "use and the demo only.",
    )
    signature_tolerance_s: int = Field(
        default=300, ge=1, le=3600,
        description="How far webhook-timestamp may be from the server's clock, either way.",
    )
    idempotency_retention_days: int = Field(
        default=7, ge=7,
        description="Days an idempotency key is kept; a delivery repeated within them "
        "returns the first job.",
    )
    backpressure_retry_after_s: int = Field(
        default=30, ge=1,
        description="Retry-After sent when a tenant has too many waiting jobs.",
    )
    log_level: str = "INFO"
    callback_timeout_s: float = Field(
        default=10, gt=0, le=120,
        description="Connect and read timeout of one callback request, in seconds.",
    )
    callback_retry_window_s: float = Field(
        default=72 * 3600, ge=0,
        description="Seconds after a callback was written during which failed deliveries "
        "are retried; after it the callback is dead.",
    )
    callback_retry_base_s: float = Field(
        default=30, gt=0, description="Delay before the first callback retry, in seconds.")
    callback_retry_max_delay_s: float = Field(
        default=3600, gt=0, description="Upper bound of one callback retry delay, in seconds.")
    callback_poll_s: float = Field(
        default=5, gt=0, description="How often the beat schedule runs callback delivery.")
    callback_batch_size: int = Field(
        default=100, ge=1, le=10_000, description="Callbacks one delivery run sends at most.")
    callback_allow_http: bool = Field(
        default=False,
        description="Allow plain http:// callback URLs; for development and tests only.",
    )
    callback_allow_hosts: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="Comma-separated host, host:port or CIDR entries that callbacks may "
        "reach even though they are loopback or private; for development and tests only.",
    )

    @field_validator("callback_allow_hosts", mode="before")
    @classmethod
    def _split_allow_hosts(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(entry.strip() for entry in value.split(",") if entry.strip())
        return value

    @field_validator("callback_allow_hosts")
    @classmethod
    def _valid_allow_hosts(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for entry in value:
            if "/" in entry:
                try:
                    ipaddress.ip_network(entry, strict=False)
                except ValueError as exc:
                    raise ValueError(f"{entry!r} is not a valid CIDR network") from exc
            elif " " in entry:
                raise ValueError(f"{entry!r} is not a host, host:port or CIDR network")
        return tuple(entry.lower() for entry in value)

    @field_validator("worker_pool")
    @classmethod
    def _known_pool(cls, value: str) -> str:
        if value not in {"threads", "prefork", "solo"}:
            raise ValueError("not a pool Sluice runs on; use threads, prefork or solo")
        return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process's settings; tests clear the cache after changing the environment."""
    return Settings()
