"""Unit tests of the simulator's request and token buckets, driven by a fake clock."""

from __future__ import annotations

import inspect
import threading

import pytest

from worker.cli.run import simulator as simulator_command
from worker.simulator.limits import RateLimiter, RateLimitRejection, format_duration
from worker.simulator.server import ChatRequest, admission_token_cost
from worker.simulator.settings import SimulatorSettings


class FakeClock:
    """A monotonic clock that moves only when a test advances it."""

    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> None:
        self.now_s += seconds


def make_limiter(
    clock: FakeClock,
    rpm: int | None = None,
    tpm: int | None = None,
    request_burst_s: float = 1.0,
    token_burst_s: float = 60.0,
) -> RateLimiter:
    return RateLimiter(
        rpm, tpm, request_burst_s=request_burst_s, token_burst_s=token_burst_s, clock=clock
    )


def admit_count(limiter: RateLimiter, attempts: int, token_cost: int = 0) -> int:
    return sum(limiter.acquire(token_cost) is None for _ in range(attempts))


def test_request_bucket_caps_burst() -> None:
    clock = FakeClock()
    limiter = make_limiter(clock, rpm=600)

    admitted = admit_count(limiter, 20)
    rejection = limiter.acquire(0)

    assert admitted == 10
    assert rejection is not None
    assert rejection.kind == "requests"
    assert rejection.outcome == "rate_limited_requests"
    assert rejection.retry_after_s == pytest.approx(0.1)


def test_request_bucket_refills_continuously() -> None:
    clock = FakeClock()
    limiter = make_limiter(clock, rpm=600)
    admit_count(limiter, 10)

    clock.advance(0.05)
    half_refilled = limiter.acquire(0)
    clock.advance(0.05)
    refilled = limiter.acquire(0)

    assert half_refilled is not None
    assert half_refilled.retry_after_s == pytest.approx(0.05)
    assert refilled is None


def test_request_bucket_never_exceeds_capacity() -> None:
    clock = FakeClock()
    limiter = make_limiter(clock, rpm=600)
    admit_count(limiter, 10)

    clock.advance(30)

    assert admit_count(limiter, 50) == 10


def test_rpm_is_quantised_per_second() -> None:
    clock = FakeClock()
    limiter = make_limiter(clock, rpm=600)

    at_once = admit_count(limiter, 600)
    over_next_minute = 0
    for _ in range(6000):
        clock.advance(0.01)
        over_next_minute += admit_count(limiter, 5)

    # 10 at once, then 10 per second: about 600 per minute, never 600 in one burst.
    assert at_once == 10
    assert over_next_minute == pytest.approx(600, abs=1)


def test_longer_request_burst_holds_more() -> None:
    clock = FakeClock()
    limiter = make_limiter(clock, rpm=600, request_burst_s=6)

    assert admit_count(limiter, 100) == 60


def test_request_bucket_holds_at_least_one() -> None:
    clock = FakeClock()
    limiter = make_limiter(clock, rpm=30)

    first = limiter.acquire(0)
    second = limiter.acquire(0)

    assert first is None
    assert second is not None
    assert second.retry_after_s == pytest.approx(2.0)


def test_token_bucket_bursts_a_minute() -> None:
    clock = FakeClock()
    limiter = make_limiter(clock, tpm=6000)

    admitted = admit_count(limiter, 10, token_cost=1000)
    rejection = limiter.acquire(1000)

    assert admitted == 6
    assert rejection is not None
    assert rejection.kind == "tokens"
    assert rejection.outcome == "rate_limited_tokens"
    assert rejection.retry_after_s == pytest.approx(10.0)
    assert rejection.message.startswith("Rate limit reached for tokens per min (TPM)")


def test_request_larger_than_token_bucket() -> None:
    clock = FakeClock()
    limiter = make_limiter(clock, tpm=600, token_burst_s=1)

    rejection = limiter.acquire(11)
    fitting = limiter.acquire(10)

    assert rejection is not None
    assert rejection.kind == "tokens"
    assert rejection.outcome == "request_too_large"
    assert rejection.retry_after_s is None
    assert rejection.headers() == {}
    assert "too large" in rejection.message
    assert "at most 10 tokens" in rejection.message
    assert fitting is None


def test_too_large_checked_before_request_bucket() -> None:
    clock = FakeClock()
    limiter = make_limiter(clock, rpm=60, tpm=600, token_burst_s=1)
    limiter.acquire(1)

    rejection = limiter.acquire(50)

    assert rejection is not None
    assert rejection.outcome == "request_too_large"


def test_binding_bucket_sets_retry_after() -> None:
    clock = FakeClock()
    # Request bucket: 1 request, 1 per second. Token bucket: 100 tokens, 50 per second.
    limiter = make_limiter(clock, rpm=60, tpm=3000, token_burst_s=2)
    assert limiter.acquire(100) is None

    rejection = limiter.acquire(100)

    assert rejection is not None
    assert rejection.kind == "tokens"
    assert rejection.retry_after_s == pytest.approx(2.0)
    clock.advance(1.0)
    assert limiter.acquire(100) is not None
    clock.advance(1.0)
    assert limiter.acquire(100) is None


def test_request_bucket_binds_on_tie() -> None:
    clock = FakeClock()
    limiter = make_limiter(clock, rpm=60, tpm=6000, token_burst_s=1)
    assert limiter.acquire(100) is None

    rejection = limiter.acquire(100)

    assert rejection is not None
    assert rejection.kind == "requests"
    assert rejection.retry_after_s == pytest.approx(1.0)


def test_rejection_debits_neither_bucket() -> None:
    clock = FakeClock()
    limiter = make_limiter(clock, rpm=600, tpm=6000)
    limiter.acquire(5000)

    rejection = limiter.acquire(2000)
    headers = limiter.headers()

    assert rejection is not None
    assert rejection.kind == "tokens"
    assert headers["x-ratelimit-remaining-requests"] == "9"
    assert headers["x-ratelimit-remaining-tokens"] == "1000"


def test_concurrent_acquires_admit_capacity() -> None:
    clock = FakeClock()
    limiter = make_limiter(clock, rpm=600, tpm=6000)
    results: list[RateLimitRejection | None] = []
    lock = threading.Lock()

    def acquire() -> None:
        for _ in range(10):
            result = limiter.acquire(100)
            with lock:
                results.append(result)

    threads = [threading.Thread(target=acquire) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(result is None for result in results) == 10
    assert limiter.headers()["x-ratelimit-remaining-tokens"] == "5000"


def test_settle_refunds_unused_tokens() -> None:
    clock = FakeClock()
    limiter = make_limiter(clock, tpm=6000)
    limiter.acquire(1000)

    before = limiter.headers()["x-ratelimit-remaining-tokens"]
    limiter.settle(1000, 300)
    after = limiter.headers()["x-ratelimit-remaining-tokens"]

    assert before == "5000"
    assert after == "5700"


def test_settle_never_exceeds_capacity() -> None:
    clock = FakeClock()
    limiter = make_limiter(clock, tpm=6000)
    limiter.acquire(1000)
    clock.advance(60)

    limiter.settle(1000, 0)

    assert limiter.headers()["x-ratelimit-remaining-tokens"] == "6000"
    assert limiter.headers()["x-ratelimit-reset-tokens"] == "0s"


def test_settle_charges_usage_above_cost() -> None:
    clock = FakeClock()
    limiter = make_limiter(clock, tpm=600, token_burst_s=1)
    limiter.acquire(10)

    # The usage exceeded the admission cost by 5 tokens, so the bucket owes 5.
    limiter.settle(10, 15)
    rejection = limiter.acquire(1)

    assert limiter.headers()["x-ratelimit-remaining-tokens"] == "0"
    assert rejection is not None
    assert rejection.retry_after_s == pytest.approx(0.6)


def test_settle_without_token_limit() -> None:
    clock = FakeClock()
    limiter = make_limiter(clock, rpm=60)
    limiter.acquire(100)

    limiter.settle(100, 0)

    assert "x-ratelimit-remaining-tokens" not in limiter.headers()


@pytest.mark.parametrize(
    ("wait_s", "retry_after", "retry_after_ms"),
    [
        (0.1, "1", "100"),
        (0.0004, "1", "1"),
        (1.0, "1", "1000"),
        (2.5, "3", "2500"),
        (59.0001, "60", "59001"),
    ],
)
def test_retry_after_headers(wait_s: float, retry_after: str, retry_after_ms: str) -> None:
    rejection = RateLimitRejection(kind="requests", message="", retry_after_s=wait_s)

    headers = rejection.headers()

    assert headers["retry-after"] == retry_after
    assert headers["retry-after-ms"] == retry_after_ms


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0, "0s"),
        (-1.0, "0s"),
        (0.0001, "1ms"),
        (0.02, "20ms"),
        (0.999, "999ms"),
        (1.0, "1s"),
        (1.25, "1.25s"),
        (59.9999, "1m0s"),
        (90.5, "1m30.5s"),
        (360.0, "6m0s"),
        (3600.0, "1h0m0s"),
        (3725.125, "1h2m5.125s"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_headers_for_both_limits() -> None:
    clock = FakeClock()
    limiter = make_limiter(clock, rpm=600, tpm=6000)
    for _ in range(3):
        limiter.acquire(1000)

    headers = limiter.headers()

    assert headers == {
        "x-ratelimit-limit-requests": "600",
        "x-ratelimit-remaining-requests": "7",
        "x-ratelimit-reset-requests": "300ms",
        "x-ratelimit-limit-tokens": "6000",
        "x-ratelimit-remaining-tokens": "3000",
        "x-ratelimit-reset-tokens": "30s",
    }


def test_headers_floor_fractional_level() -> None:
    clock = FakeClock()
    limiter = make_limiter(clock, rpm=600)
    admit_count(limiter, 10)

    clock.advance(0.15)
    headers = limiter.headers()

    assert headers["x-ratelimit-remaining-requests"] == "1"
    assert headers["x-ratelimit-reset-requests"] == "850ms"


def test_headers_omit_unset_limits() -> None:
    clock = FakeClock()
    requests_only = make_limiter(clock, rpm=600)
    unlimited = make_limiter(clock)

    assert set(requests_only.headers()) == {
        "x-ratelimit-limit-requests",
        "x-ratelimit-remaining-requests",
        "x-ratelimit-reset-requests",
    }
    assert unlimited.headers() == {}
    assert admit_count(unlimited, 1000, token_cost=10**9) == 1000


def test_describe_reports_capacity() -> None:
    clock = FakeClock()
    limiter = make_limiter(clock, rpm=30, tpm=6000, token_burst_s=30)

    described = limiter.describe()

    assert described["requests"] == {
        "limit_per_min": 30,
        "burst_s": 1.0,
        "capacity": 1.0,
        "level": 1.0,
    }
    assert described["tokens"]["capacity"] == pytest.approx(3000.0)


def chat_request(
    max_tokens: int | None = None, max_completion_tokens: int | None = None
) -> ChatRequest:
    return ChatRequest.model_validate(
        {
            "model": "m",
            "messages": [{"role": "user", "content": "x" * 400}],
            "max_tokens": max_tokens,
            "max_completion_tokens": max_completion_tokens,
        }
    )


def test_admission_cost_uses_larger_estimate() -> None:
    # The prompt estimate is ceil(400 / 4) + 4 = 104 tokens.
    assert admission_token_cost(chat_request()) == 104
    assert admission_token_cost(chat_request(max_tokens=50)) == 104
    assert admission_token_cost(chat_request(max_tokens=500)) == 500
    assert admission_token_cost(chat_request(max_completion_tokens=700, max_tokens=50)) == 700


def test_settings_validate_limits() -> None:
    with pytest.raises(ValueError, match="rpm"):
        SimulatorSettings(rpm=0)
    with pytest.raises(ValueError, match="token_burst_s"):
        SimulatorSettings(token_burst_s=0)


def test_cli_defaults_match_settings() -> None:
    parameters = inspect.signature(simulator_command).parameters
    defaults = SimulatorSettings()

    for name in SimulatorSettings.model_fields:
        if name in parameters:
            assert parameters[name].default == getattr(defaults, name), name
    assert set(SimulatorSettings.model_fields) - set(parameters) == {"models", "request_log_size"}
