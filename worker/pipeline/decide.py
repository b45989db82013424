"""What happens after each LLM call, decided by a pure function.

The fallback policy per job is: repair once on the same model (the model gets the errors
back), then escalate to the next model of the route, then a review item. A provider failure
that is transient ends the attempt and schedules another one; a permanent one falls back to
the next model of the route.

Worst case of provider requests per attempt: two per route step (first call plus one
repair), so `2 * len(route)`. Per job: `max_attempts * 2 * len(route)`.
"""

from __future__ import annotations

from dataclasses import dataclass

from worker.workflows.validation import ValidationResult

TRUNCATED = "truncated"
PROVIDER_EXHAUSTED = "provider_exhausted"


@dataclass(frozen=True)
class Accept:
    pass


@dataclass(frozen=True)
class Repair:
    pass


@dataclass(frozen=True)
class Escalate:
    next_step: int
    reason: str


@dataclass(frozen=True)
class Review:
    reason: str


@dataclass(frozen=True)
class RetryLater:
    reason: str
    delay_s: float


Decision = Accept | Repair | Escalate | Review | RetryLater


@dataclass(frozen=True)
class StepState:
    """Where the attempt stands on the route."""

    step: int
    route_length: int
    repaired: bool


def after_output(
    state: StepState, finish_reason: str | None, result: ValidationResult
) -> Decision:
    """Decide after a call that returned output."""
    if finish_reason == "length":
        # A cut-off answer is never a success, and repairing it on the same budget
        # would be cut off again.
        return _escalate_or_review(state, TRUNCATED)
    if result.ok:
        return Accept()
    reason = result.reason or "invalid_output"
    if not state.repaired:
        return Repair()
    return _escalate_or_review(state, reason)


def after_provider_error(
    state: StepState,
    *,
    transient: bool,
    attempt: int,
    max_attempts: int,
    retry_after_s: float | None,
    base_delay_s: float,
    max_delay_s: float,
) -> Decision:
    """Decide after a call that failed at the provider."""
    if not transient:
        return _escalate_or_review(state, PROVIDER_EXHAUSTED)
    if attempt >= max_attempts:
        return Review(PROVIDER_EXHAUSTED)
    delay = base_delay_s * 2 ** (attempt - 1)
    if retry_after_s is not None:
        delay = max(delay, retry_after_s)
    return RetryLater("provider_error", min(delay, max_delay_s))


def _escalate_or_review(state: StepState, reason: str) -> Decision:
    if state.step + 1 < state.route_length:
        return Escalate(state.step + 1, reason)
    return Review(reason)
