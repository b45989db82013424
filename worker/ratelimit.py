"""A rate limiter per provider account, shared by every worker process through Redis.

See docs/rate-limits.md for the algorithm. In short: two token buckets per provider
(requests and tokens) live in one Redis hash and are refilled from Redis's own clock, so
workers on different hosts agree. One Lua script checks and debits both buckets at once,
so two workers can never both take the last slot. A call reserves its prompt tokens plus
its `max_tokens`; `reconcile` returns what the provider did not use. Response headers can
only lower the buckets, and a 429 pauses the whole provider until its Retry-After passes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import redis

from worker.config import LimitsConfig

logger = logging.getLogger(__name__)

KEY_PREFIX = "sluice:ratelimit:"

# Bucket state: req, tok (current levels), ts (ms of the last refill), paused_until (ms).
# Returns {granted (1/0/-1), wait_ms, binding dimension}; -1 means the request can never
# fit because its tokens exceed the bucket's capacity.
_ACQUIRE = """
local key = KEYS[1]
local rpm, tpm = tonumber(ARGV[1]), tonumber(ARGV[2])
local req_cap, tok_cap = tonumber(ARGV[3]), tonumber(ARGV[4])
local cost = tonumber(ARGV[5])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local s = redis.call('HMGET', key, 'req', 'tok', 'ts', 'paused_until')
local req = tonumber(s[1]) or req_cap
local tok = tonumber(s[2]) or tok_cap
local ts = tonumber(s[3]) or now
local paused = tonumber(s[4]) or 0
local elapsed = math.max(0, now - ts)
if rpm > 0 then req = math.min(req_cap, req + elapsed * rpm / 60000) end
if tpm > 0 then tok = math.min(tok_cap, tok + elapsed * tpm / 60000) end
redis.call('HSET', key, 'req', req, 'tok', tok, 'ts', now)
redis.call('PEXPIRE', key, 3600000)
if paused > now then return {0, paused - now, 'paused'} end
if tpm > 0 and cost > tok_cap then return {-1, 0, 'tokens'} end
local wait_req, wait_tok = 0, 0
if rpm > 0 and req < 1 then wait_req = math.ceil((1 - req) * 60000 / rpm) end
if tpm > 0 and tok < cost then wait_tok = math.ceil((cost - tok) * 60000 / tpm) end
if wait_req == 0 and wait_tok == 0 then
  if rpm > 0 then req = req - 1 end
  if tpm > 0 then tok = tok - cost end
  redis.call('HSET', key, 'req', req, 'tok', tok)
  return {1, 0, ''}
end
if wait_req >= wait_tok then return {0, wait_req, 'requests'} end
return {0, wait_tok, 'tokens'}
"""

# Adds ARGV[1] tokens back (negative: takes more), never above capacity ARGV[2].
_RECONCILE = """
local tok = tonumber(redis.call('HGET', KEYS[1], 'tok'))
if tok == nil then return 0 end
tok = math.min(tonumber(ARGV[2]), tok + tonumber(ARGV[1]))
redis.call('HSET', KEYS[1], 'tok', tok)
return 1
"""

# Lowers a bucket to what the provider reported as remaining; never raises it.
_CORRECT = """
local field, remaining = ARGV[1], tonumber(ARGV[2])
local level = tonumber(redis.call('HGET', KEYS[1], field))
if level ~= nil and remaining < level then redis.call('HSET', KEYS[1], field, remaining) end
return 1
"""

# Pauses the provider until now + ARGV[1] ms, keeping a later pause if one is set.
_PAUSE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local until_ms = now + tonumber(ARGV[1])
local current = tonumber(redis.call('HGET', KEYS[1], 'paused_until')) or 0
if until_ms > current then redis.call('HSET', KEYS[1], 'paused_until', until_ms) end
redis.call('PEXPIRE', KEYS[1], 3600000)
return until_ms
"""


# A counting semaphore: members are slot ids scored by their expiry (ms). Expired members
# (their worker died mid-call) are dropped before counting. Returns 1 if a slot was taken.
_TAKE_SLOT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
return 1
"""

SLOT_PREFIX = "sluice:inflight:"


def request_rate(limits: LimitsConfig) -> tuple[float, float]:
    """Return the requests per minute and bucket capacity this side of the provider uses.

    Network jitter can make two requests granted 1/rate apart arrive closer together. When
    the provider's bucket has room for two or more requests, keeping one request of it unused
    absorbs that. A smaller bucket has no such margin, so there `jitter_s` is added to the
    spacing between requests instead.
    """
    rpm = (limits.requests_per_minute or 0) * (1 - limits.headroom)
    if not rpm:
        return 0.0, 1.0
    provider_capacity = rpm / 60 * limits.request_burst_s
    if provider_capacity >= 2:
        return rpm, provider_capacity - 1
    return 60 / (60 / rpm + limits.jitter_s), 1.0


class RequestTooLargeError(Exception):
    """The call's tokens exceed what the provider's token bucket can ever hold."""


@dataclass(frozen=True)
class Grant:
    """The result of one acquire: granted now, or the wait before trying again."""

    granted: bool
    wait_s: float
    binding: str


class RateLimiter:
    """Client side of the shared buckets; one instance per process is enough."""

    def __init__(self, client: redis.Redis) -> None:
        # redis-py types sync and async results as one union; this client is sync.
        self._client: Any = client
        self._acquire = client.register_script(_ACQUIRE)
        self._reconcile = client.register_script(_RECONCILE)
        self._correct = client.register_script(_CORRECT)
        self._pause = client.register_script(_PAUSE)
        self._take_slot = client.register_script(_TAKE_SLOT)

    def acquire(self, provider: str, limits: LimitsConfig, tokens: int) -> Grant:
        """Reserve one request and `tokens` tokens now, or return how long to wait."""
        rpm, request_capacity = request_rate(limits)
        tpm = (limits.tokens_per_minute or 0) * (1 - limits.headroom)
        if not rpm and not tpm:
            return self._pause_only(provider)
        token_capacity = tpm / 60 * limits.token_burst_s
        granted, wait_ms, binding = self._acquire(
            keys=[KEY_PREFIX + provider],
            args=[rpm, tpm, request_capacity, token_capacity, tokens],
        )
        if int(granted) < 0:
            raise RequestTooLargeError(
                f"a call of {tokens} tokens exceeds provider {provider}'s token bucket of "
                f"{token_capacity:.0f} tokens; raise limits.tokens_per_minute or "
                "limits.token_burst_s, or lower the model's max_output_tokens"
            )
        return Grant(bool(int(granted)), int(wait_ms) / 1000, _text(binding))

    def _pause_only(self, provider: str) -> Grant:
        """Without configured limits, only a provider's 429 pause can hold a call back."""
        paused_until_ms = self._client.hget(KEY_PREFIX + provider, "paused_until")
        if paused_until_ms is None:
            return Grant(True, 0.0, "")
        seconds, microseconds = self._client.time()
        wait_ms = float(paused_until_ms) - (seconds * 1000 + microseconds // 1000)
        if wait_ms <= 0:
            return Grant(True, 0.0, "")
        return Grant(False, wait_ms / 1000, "paused")

    def reconcile(self, provider: str, limits: LimitsConfig, reserved: int, used: int) -> None:
        """Give back the reserved tokens the call did not use (or take the overrun)."""
        if not limits.tokens_per_minute or reserved == used:
            return
        capacity = limits.tokens_per_minute * (1 - limits.headroom) / 60 * limits.token_burst_s
        self._reconcile(keys=[KEY_PREFIX + provider], args=[reserved - used, capacity])

    def correct(self, provider: str, headers: dict[str, str]) -> None:
        """Lower the buckets to the provider's `x-ratelimit-remaining-*` when it has less."""
        for field, header in (("req", "x-ratelimit-remaining-requests"),
                              ("tok", "x-ratelimit-remaining-tokens")):
            value = headers.get(header)
            if value is not None and value.isdigit():
                self._correct(keys=[KEY_PREFIX + provider], args=[field, int(value)])

    def pause(self, provider: str, seconds: float) -> None:
        """Stop every worker from calling this provider for `seconds` (after a 429)."""
        self._pause(keys=[KEY_PREFIX + provider], args=[max(1, int(seconds * 1000))])
        logger.info("provider paused after a rate-limit response",
                    extra={"action": "ratelimit.paused", "provider": provider,
                           "pause_s": seconds})

    def take_slot(self, provider: str, limit: int, slot_id: str, ttl_s: float) -> bool:
        """Take one of `limit` in-flight slots for `ttl_s` at most; False when all are taken."""
        taken = self._take_slot(keys=[SLOT_PREFIX + provider],
                                args=[limit, max(1, int(ttl_s * 1000)), slot_id])
        return bool(int(taken))

    def release_slot(self, provider: str, slot_id: str) -> None:
        self._client.zrem(SLOT_PREFIX + provider, slot_id)

    def state(self, provider: str) -> dict[str, Any]:
        raw = self._client.hgetall(KEY_PREFIX + provider)
        return {_text(k): float(v) for k, v in raw.items()}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
