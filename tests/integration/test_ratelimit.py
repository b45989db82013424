"""The shared rate limiter and circuit breaker against a real Redis."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import redis

from worker.breaker import CircuitBreaker
from worker.config import BreakerConfig, LimitsConfig
from worker.ratelimit import RateLimiter, RequestTooLargeError
from worker.redis_client import client_url


@pytest.fixture
def client(clean_redis: str) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(client_url(clean_redis))
    yield connection
    connection.close()


def test_requests_are_quantised_per_second(client: redis.Redis) -> None:
    limiter = RateLimiter(client)
    limits = LimitsConfig(requests_per_minute=180, headroom=0)

    grants = [limiter.acquire("p", limits, 10) for _ in range(3)]

    assert [g.granted for g in grants] == [True, True, False]
    assert grants[2].binding == "requests"
    assert 0 < grants[2].wait_s <= 0.34


def test_tokens_and_requests_are_reserved_together(client: redis.Redis) -> None:
    limiter = RateLimiter(client)
    limits = LimitsConfig(requests_per_minute=6000, tokens_per_minute=6000, headroom=0)

    assert limiter.acquire("p", limits, 5000).granted
    refused = limiter.acquire("p", limits, 2000)

    assert not refused.granted
    assert refused.binding == "tokens"
    assert 9 < refused.wait_s <= 10.1
    assert limiter.state("p")["req"] > 97


def test_reconcile_returns_unused_tokens(client: redis.Redis) -> None:
    limiter = RateLimiter(client)
    limits = LimitsConfig(tokens_per_minute=6000, headroom=0)
    limiter.acquire("p", limits, 5000)

    limiter.reconcile("p", limits, reserved=5000, used=1000)

    assert limiter.acquire("p", limits, 4500).granted


def test_headers_only_lower_the_bucket(client: redis.Redis) -> None:
    limiter = RateLimiter(client)
    limits = LimitsConfig(requests_per_minute=6000, tokens_per_minute=60000)
    limiter.acquire("p", limits, 100)

    limiter.correct("p", {"x-ratelimit-remaining-tokens": "50", "x-ratelimit-remaining-requests":
                          "100000"})

    state = limiter.state("p")
    assert state["tok"] < 60
    assert state["req"] < 100
    assert not limiter.acquire("p", limits, 500).granted


def test_pause_stops_every_caller(client: redis.Redis) -> None:
    limiter = RateLimiter(client)
    other_worker = RateLimiter(redis.Redis(connection_pool=client.connection_pool))
    limits = LimitsConfig(requests_per_minute=6000)

    limiter.pause("p", 2.0)

    grant = other_worker.acquire("p", limits, 1)
    assert not grant.granted
    assert grant.binding == "paused"
    assert 1.5 < grant.wait_s <= 2.0
    assert other_worker.acquire("other-provider", limits, 1).granted


def test_oversized_request_is_rejected_with_the_fix(client: redis.Redis) -> None:
    limiter = RateLimiter(client)
    with pytest.raises(RequestTooLargeError, match="tokens_per_minute"):
        limiter.acquire("p", LimitsConfig(tokens_per_minute=1000, token_burst_s=1), 500)


def test_unlimited_provider_still_honours_a_pause(client: redis.Redis) -> None:
    limiter = RateLimiter(client)
    assert limiter.acquire("p", LimitsConfig(), 10**9).granted

    limiter.pause("p", 1.0)

    grant = limiter.acquire("p", LimitsConfig(), 1)
    assert not grant.granted
    assert grant.binding == "paused"
    assert 0.5 < grant.wait_s <= 1.0


def test_concurrent_callers_never_overdraw(client: redis.Redis) -> None:
    limits = LimitsConfig(requests_per_minute=600, tokens_per_minute=10**9, headroom=0)
    granted: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        limiter = RateLimiter(redis.Redis(connection_pool=client.connection_pool))
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            if limiter.acquire("p", limits, 1).granted:
                with lock:
                    granted.append(time.monotonic())

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # 9 in the initial burst (one less than a second's worth) plus at most 10 refilled
    # over the second.
    assert 9 <= len(granted) <= 20


def test_breaker_opens_after_failures_then_probes_once(client: redis.Redis) -> None:
    breaker = CircuitBreaker(client)
    config = BreakerConfig(failures=3, cooldown_s=0.3)
    for _ in range(3):
        assert breaker.allows("p", config)
        breaker.record_failure("p", config)

    assert not breaker.allows("p", config)
    time.sleep(0.35)
    assert breaker.allows("p", config)
    assert not breaker.allows("p", config)

    breaker.record_success("p")
    assert breaker.allows("p", config)
    assert breaker.allows("p", config)


def test_breaker_reopens_when_probe_fails(client: redis.Redis) -> None:
    breaker = CircuitBreaker(client)
    config = BreakerConfig(failures=1, cooldown_s=0.2)
    breaker.record_failure("p", config)
    time.sleep(0.25)
    assert breaker.allows("p", config)

    breaker.record_failure("p", config)

    assert breaker.is_open("p")
    assert not breaker.allows("p", config)


def test_in_flight_slots_are_shared_and_expire(client: redis.Redis) -> None:
    limiter = RateLimiter(client)
    other_worker = RateLimiter(redis.Redis(connection_pool=client.connection_pool))

    assert limiter.take_slot("p", 2, "a", ttl_s=60)
    assert other_worker.take_slot("p", 2, "b", ttl_s=1)
    assert not limiter.take_slot("p", 2, "c", ttl_s=60)

    limiter.release_slot("p", "a")
    assert limiter.take_slot("p", 2, "c", ttl_s=60)
    assert not limiter.take_slot("p", 2, "d", ttl_s=60)

    time.sleep(1.05)  # slot "b" belonged to a worker that died without releasing it
    assert limiter.take_slot("p", 2, "d", ttl_s=60)


def test_low_rates_get_extra_spacing(client: redis.Redis) -> None:
    limiter = RateLimiter(client)
    limits = LimitsConfig(requests_per_minute=60, headroom=0, jitter_s=0.1)

    assert limiter.acquire("p", limits, 1).granted
    refused = limiter.acquire("p", limits, 1)

    assert not refused.granted
    assert 1.05 < refused.wait_s <= 1.11
