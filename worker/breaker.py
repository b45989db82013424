"""A circuit breaker per provider, shared by all workers through Redis.

Closed: calls go through and consecutive failures are counted. After
`breaker.failures` of them the breaker opens for `breaker.cooldown_s`, and callers fall
back to other providers. When the cooldown ends, one caller gets a probe slot (a key set
with NX); its success closes the breaker, its failure opens it again.
"""

from __future__ import annotations

import logging
from typing import Any

import redis

from worker.config import BreakerConfig

logger = logging.getLogger(__name__)

KEY_PREFIX = "sluice:breaker:"


class CircuitBreaker:
    def __init__(self, client: redis.Redis) -> None:
        # redis-py types sync and async results as one union; this client is sync.
        self._client: Any = client

    def _keys(self, provider: str) -> tuple[str, str, str]:
        base = KEY_PREFIX + provider
        return base + ":failures", base + ":open", base + ":probe"

    def allows(self, provider: str, config: BreakerConfig) -> bool:
        """Tell whether a call may go to this provider now."""
        failures_key, open_key, probe_key = self._keys(provider)
        if self._client.exists(open_key):
            return False
        failures = int(self._client.get(failures_key) or 0)
        if failures < config.failures:
            return True
        # The cooldown is over: let exactly one caller probe the provider.
        probe_ttl_ms = max(1000, int(config.cooldown_s * 1000))
        return bool(self._client.set(probe_key, 1, nx=True, px=probe_ttl_ms))

    def record_success(self, provider: str) -> None:
        failures_key, open_key, probe_key = self._keys(provider)
        if self._client.get(failures_key) is not None:
            self._client.delete(failures_key, open_key, probe_key)

    def record_failure(self, provider: str, config: BreakerConfig) -> None:
        failures_key, open_key, probe_key = self._keys(provider)
        failures = int(self._client.incr(failures_key))
        self._client.expire(failures_key, 3600)
        if failures >= config.failures:
            self._client.set(open_key, 1, px=int(config.cooldown_s * 1000))
            self._client.delete(probe_key)
            logger.warning("circuit opened for provider after %s consecutive failures",
                           failures, extra={"action": "breaker.opened", "provider": provider})

    def is_open(self, provider: str) -> bool:
        return bool(self._client.exists(self._keys(provider)[1]))
