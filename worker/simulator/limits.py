"""Requests-per-minute and tokens-per-minute limits that behave like OpenAI's.

Model: two token buckets, one counting requests and one counting tokens. Each bucket starts
full, refills continuously at `limit / 60` units per second and contains at most
`limit / 60 * burst_s` units. The request bucket uses `request_burst_s` (default 1 s) and
always has room for at least 1 request. The token bucket uses `token_burst_s` (default 60 s) and
has no such floor.

Per-second quantisation: with the default request burst, RPM 600 gives a bucket of 10
requests that refills at 10 per second. A client may send 10 requests at once and then
about 10 per second, but never the whole minute's 600 in its first second. Over any window
of T seconds at most `capacity + rate * T` requests pass, so 10 + 10 * T for RPM 600.
Tokens may burst up to a minute's worth, because the token bucket contains 60 s of TPM.

Admission: a request's token cost is `max(estimated prompt tokens, max_tokens)`, where
max_tokens is the request's max_completion_tokens or max_tokens (0 when absent). A request
is admitted only when the request bucket contains at least 1 and the token bucket at least
the cost. Both are then debited under one lock. A request whose cost exceeds the token bucket's
capacity can never pass and is rejected as too large, without a retry-after header.

Reconciliation: once the response exists, `settle` charges the tokens the response reports in
place of the admission cost. It adds the difference back, never above capacity. When the
usage exceeds the cost (no max_tokens set), the bucket may go below zero, and later
requests wait until it has refilled.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

# Slack for float sums: a bucket refilled by many small steps may hold 0.9999999999 of 1.
_EPSILON = 1e-9

LimitKind = Literal["requests", "tokens"]


@dataclass
class TokenBucket:
    """A bucket that refills at `rate_per_s` up to `capacity`; its level may go below zero."""

    rate_per_s: float
    capacity: float
    level: float
    updated_s: float

    @classmethod
    def per_minute(
        cls, limit_per_min: int, burst_s: float, min_capacity: float, now_s: float
    ) -> TokenBucket:
        rate_per_s = limit_per_min / 60
        capacity = max(rate_per_s * burst_s, min_capacity)
        return cls(rate_per_s=rate_per_s, capacity=capacity, level=capacity, updated_s=now_s)

    def refill(self, now_s: float) -> None:
        elapsed_s = max(0.0, now_s - self.updated_s)
        self.level = min(self.capacity, self.level + elapsed_s * self.rate_per_s)
        self.updated_s = max(self.updated_s, now_s)

    def wait_s(self, amount: float) -> float:
        """Return the seconds until the bucket contains `amount`, or 0 when it already does."""
        missing = amount - self.level
        if missing <= _EPSILON:
            return 0.0
        return missing / self.rate_per_s

    def reset_s(self) -> float:
        """Return the seconds until the bucket is full again."""
        return self.wait_s(self.capacity)


@dataclass(frozen=True)
class RateLimitRejection:
    """A rejected request: the binding limit, the error message and the wait before a retry."""

    kind: LimitKind
    message: str
    # None when waiting cannot help because the request is larger than the bucket.
    retry_after_s: float | None

    @property
    def outcome(self) -> str:
        if self.retry_after_s is None:
            return "request_too_large"
        return f"rate_limited_{self.kind}"

    def headers(self) -> dict[str, str]:
        """Return the retry-after headers, in whole seconds and in milliseconds, rounded up."""
        if self.retry_after_s is None:
            return {}
        return {
            "retry-after": str(max(1, _ceil(self.retry_after_s))),
            "retry-after-ms": str(max(1, _ceil(self.retry_after_s * 1000))),
        }


class RateLimiter:
    """The request and token buckets of one simulator; None as a limit means unlimited.

    Thread-safe: every method takes the lock, so concurrent requests see consistent levels.
    `clock` returns seconds on a monotonic scale and is replaceable in tests.
    """

    def __init__(
        self,
        rpm: int | None,
        tpm: int | None,
        *,
        request_burst_s: float = 1.0,
        token_burst_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rpm = rpm
        self.tpm = tpm
        self.request_burst_s = request_burst_s
        self.token_burst_s = token_burst_s
        self._clock = clock
        self._lock = threading.Lock()
        now_s = clock()
        self._requests = (
            TokenBucket.per_minute(rpm, request_burst_s, 1.0, now_s) if rpm is not None else None
        )
        self._tokens = (
            TokenBucket.per_minute(tpm, token_burst_s, 0.0, now_s) if tpm is not None else None
        )

    def acquire(self, token_cost: int) -> RateLimitRejection | None:
        """Debit 1 request and `token_cost` tokens, or return why the request must wait."""
        with self._lock:
            self._refill()
            requests, tokens = self._requests, self._tokens
            if tokens is not None and token_cost > tokens.capacity + _EPSILON:
                return self._too_large(token_cost, tokens)
            request_wait_s = requests.wait_s(1) if requests is not None else 0.0
            token_wait_s = tokens.wait_s(token_cost) if tokens is not None else 0.0
            if request_wait_s > 0 or token_wait_s > 0:
                return self._rejection(token_cost, request_wait_s, token_wait_s)
            if requests is not None:
                requests.level -= 1
            if tokens is not None:
                tokens.level -= token_cost
            return None

    def settle(self, token_cost: int, charged_tokens: int) -> None:
        """Charge `charged_tokens` in place of the `token_cost` that `acquire` debited.

        Pass 0 to refund the whole cost. The request stays debited either way.
        """
        with self._lock:
            if self._tokens is None:
                return
            self._refill()
            refund = token_cost - charged_tokens
            self._tokens.level = min(self._tokens.capacity, self._tokens.level + refund)

    def headers(self) -> dict[str, str]:
        """Return OpenAI's x-ratelimit-* headers for each limit that is set."""
        with self._lock:
            self._refill()
            headers: dict[str, str] = {}
            for kind, limit, bucket in (
                ("requests", self.rpm, self._requests),
                ("tokens", self.tpm, self._tokens),
            ):
                if limit is None or bucket is None:
                    continue
                headers[f"x-ratelimit-limit-{kind}"] = str(limit)
                headers[f"x-ratelimit-remaining-{kind}"] = str(max(0, math.floor(bucket.level)))
                headers[f"x-ratelimit-reset-{kind}"] = format_duration(bucket.reset_s())
            return headers

    def describe(self) -> dict[str, dict[str, float | int | None]]:
        """Return each limit's configuration, capacity and current level, for the stats."""
        with self._lock:
            self._refill()
            described: dict[str, dict[str, float | int | None]] = {}
            for kind, limit, burst_s, bucket in (
                ("requests", self.rpm, self.request_burst_s, self._requests),
                ("tokens", self.tpm, self.token_burst_s, self._tokens),
            ):
                described[kind] = {
                    "limit_per_min": limit,
                    "burst_s": burst_s,
                    "capacity": bucket.capacity if bucket is not None else None,
                    "level": bucket.level if bucket is not None else None,
                }
            return described

    def _refill(self) -> None:
        now_s = self._clock()
        for bucket in (self._requests, self._tokens):
            if bucket is not None:
                bucket.refill(now_s)

    def _too_large(self, token_cost: int, tokens: TokenBucket) -> RateLimitRejection:
        message = (
            f"Request too large for tokens per min (TPM): it needs {token_cost} tokens, but "
            f"the limit of {self.tpm} TPM with token_burst_s={self.token_burst_s:g} allows at "
            f"most {math.floor(tokens.capacity)} tokens per request. Shorten the prompt or "
            "lower max_tokens."
        )
        return RateLimitRejection(kind="tokens", message=message, retry_after_s=None)

    def _rejection(
        self, token_cost: int, request_wait_s: float, token_wait_s: float
    ) -> RateLimitRejection:
        # The bucket with the longer wait binds; after it both buckets have enough.
        wait_s = max(request_wait_s, token_wait_s)
        if request_wait_s >= token_wait_s and self._requests is not None:
            kind: LimitKind = "requests"
            detail = (
                f"requests per min (RPM): limit {self.rpm}, "
                f"remaining {max(0, math.floor(self._requests.level))}, requested 1"
            )
        else:
            assert self._tokens is not None
            kind = "tokens"
            detail = (
                f"tokens per min (TPM): limit {self.tpm}, "
                f"remaining {max(0, math.floor(self._tokens.level))}, requested {token_cost}"
            )
        message = f"Rate limit reached for {detail}. Try again in {format_duration(wait_s)}."
        return RateLimitRejection(kind=kind, message=message, retry_after_s=wait_s)


def format_duration(seconds: float) -> str:
    """Format a duration as OpenAI's reset headers do: `20ms`, `1s`, `1m30.5s`, `6m0s`.

    The value is rounded up to whole milliseconds, so a client never retries too early.
    """
    total_ms = _ceil(seconds * 1000)
    if total_ms <= 0:
        return "0s"
    if total_ms < 1000:
        return f"{total_ms}ms"
    hours, rest_ms = divmod(total_ms, 3_600_000)
    minutes, rest_ms = divmod(rest_ms, 60_000)
    whole_s, fraction_ms = divmod(rest_ms, 1000)
    seconds_text = str(whole_s)
    if fraction_ms:
        seconds_text += "." + f"{fraction_ms:03d}".rstrip("0")
    if hours:
        return f"{hours}h{minutes}m{seconds_text}s"
    if minutes:
        return f"{minutes}m{seconds_text}s"
    return f"{seconds_text}s"


def _ceil(value: float) -> int:
    # Without the slack, 0.02 * 1000 = 20.000000000000004 would round up to 21.
    return math.ceil(value - 1e-6)
