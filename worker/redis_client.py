"""One Redis client per process for limiter and breaker state (the broker has its own)."""

from __future__ import annotations

import os
import threading

import redis

from worker.errors import ConfigError
from worker.settings import get_settings

_client: redis.Redis | None = None
_client_pid: int | None = None
_lock = threading.Lock()


def client_url(url: str) -> str:
    """Translate Celery's `redis+socket://` spelling into redis-py's `unix://`."""
    if url.startswith("redis+socket://"):
        return "unix://" + url[len("redis+socket://"):]
    return url


def get_redis() -> redis.Redis:
    """Return this process's client, creating a new one after a fork."""
    global _client, _client_pid
    with _lock:
        if _client is None or _client_pid != os.getpid():
            url = get_settings().redis_url
            if not url:
                raise ConfigError("SLUICE_REDIS_URL is not set; the rate limiter needs Redis")
            _client = redis.Redis.from_url(client_url(url), socket_timeout=5,
                                           health_check_interval=30)
            _client_pid = os.getpid()
        return _client


def reset_redis() -> None:
    global _client, _client_pid
    with _lock:
        _client = _client_pid = None
