"""The simulator's record of chat completion requests and its running totals.

The log keeps the latest entries for inspecting what a client sent. The totals count every
request since the last reset, however many log entries were dropped, so a benchmark can
compute how much of each rate limit it used.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class RequestRecord:
    """One chat completion request as the request log stores it.

    `prompt_tokens` and `completion_tokens` are the tokens charged to the token bucket, so
    they are 0 for requests rejected before admission and for refunded faults.
    """

    time: float  # Unix time at which the request arrived.
    model: str | None = None
    status: int = 200
    outcome: str = "ok"
    admitted: bool = False
    admission_token_cost: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: float = 0.0
    # The Retry-After of a 429, in ms, so tests can check that clients waited for it.
    retry_after_ms: int | None = None
    # True when the client closed the connection while a delayed response was pending.
    client_disconnected: bool = False


class RequestLog:
    """In-memory record of chat completion requests, with totals since the last reset."""

    def __init__(self, max_entries: int) -> None:
        self._entries: deque[RequestRecord] = deque(maxlen=max_entries)
        self._lock = threading.Lock()
        self._outcomes: Counter[str] = Counter()
        self._requests_accepted = 0
        self._tokens_accepted = 0
        self._totals_since = time.time()
        self._totals_since_monotonic_s = time.monotonic()

    def record(self, entry: RequestRecord) -> None:
        with self._lock:
            self._entries.append(entry)
            self._outcomes[entry.outcome] += 1
            if entry.admitted:
                self._requests_accepted += 1
                self._tokens_accepted += entry.prompt_tokens + entry.completion_tokens

    def entries(self) -> list[dict[str, Any]]:
        with self._lock:
            return [asdict(entry) for entry in self._entries]

    def clear(self) -> int:
        """Remove all entries and return how many there were. The totals stay."""
        with self._lock:
            count = len(self._entries)
            self._entries.clear()
            return count

    def totals(self) -> dict[str, Any]:
        """Return the request count by outcome and the requests and tokens admitted.

        Tokens accepted are those charged after reconciliation and refunds.
        """
        with self._lock:
            return {
                "since": self._totals_since,
                "elapsed_s": time.monotonic() - self._totals_since_monotonic_s,
                "requests_total": sum(self._outcomes.values()),
                "outcomes": dict(self._outcomes),
                "requests_accepted": self._requests_accepted,
                "tokens_accepted": self._tokens_accepted,
            }

    def reset_totals(self) -> int:
        """Zero the totals, restart their clock and return how many requests they counted."""
        with self._lock:
            count = sum(self._outcomes.values())
            self._outcomes.clear()
            self._requests_accepted = 0
            self._tokens_accepted = 0
            self._totals_since = time.time()
            self._totals_since_monotonic_s = time.monotonic()
            return count
