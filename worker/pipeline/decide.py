"""What happens after each LLM call, decided by pure functions.

The fallback policy per job: a cut-off answer is tried once more with twice the output
budget; invalid output is repaired once on the same model (the model gets the errors
back); then the route escalates to its next model; after the last model, a review item.
A provider failure first falls back to the step's fallback models (inside `calls`); when
none is left, a transient failure ends the attempt and schedules another one after a
jittered exponential delay, while a permanent one escalates like invalid output.

The number of provider requests per job is capped by `max_requests_per_job` whatever
these decisions say; `docs/rate-limits.md` derives the worst case.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from worker.workflows.validation import ValidationResult

TRUNCATED = "truncated"
PROVIDER_EXHAUSTED = "provider_exhausted"
INPUT_TOO_LONG = "input_too_long"


@dataclass(frozen=True)
class Accept:
    pass


@dataclass(frozen=True)
class Repair:
    pass


@dataclass(frozen=True)
class RetryLarger:
    """Call the same model again with a larger output budget."""


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


Decision = Accept | Repair | RetryLarger | Escalate | Review | RetryLater


@dataclass(frozen=True)
class StepState:
    """Position of the attempt on the route."""

    step: int
    route_length: int
    repaired: bool = False
    enlarged: bool = False

    def next_step(self, step: int) -> StepState:
        return StepState(step, self.route_length)

    def after(self, decision: Decision) -> StepState:
        if isinstance(decision, Repair):
            return replace(self, repaired=True)
        if isinstance(decision, RetryLarger):
            return replace(self, enlarged=True)
        if isinstance(decision, Escalate):
            return self.next_step(decision.next_step)
        return self


def after_output(
    state: StepState, finish_reason: str | None, result: ValidationResult
) -> Decision:
    """Decide after a call that returned output."""
    if finish_reason == "length":
        # A cut-off answer is never a success, whatever the validator returns for the part.
        return RetryLarger() if not state.enlarged else escalate_or_review(state, TRUNCATED)
    if result.ok:
        return Accept()
    if not state.repaired:
        return Repair()
    return escalate_or_review(state, result.reason or "invalid_output")


@dataclass(frozen=True)
class Backoff:
    base_delay_s: float
    max_delay_s: float


def after_provider_error(
    state: StepState,
    *,
    transient: bool,
    failed_attempts: int,
    max_attempts: int,
    retry_after_s: float | None,
    backoff: Backoff,
    jitter: float,
) -> Decision:
    """Decide after every candidate of the step failed at the provider.

    `failed_attempts` counts this one; `jitter` is a number in [0, 1) that the caller
    draws, so this function stays deterministic.
    """
    if not transient:
        return escalate_or_review(state, PROVIDER_EXHAUSTED)
    if failed_attempts >= max_attempts:
        return Review(PROVIDER_EXHAUSTED)
    return RetryLater("provider_error", retry_delay_s(failed_attempts, retry_after_s,
                                                      backoff, jitter))


def retry_delay_s(
    failures: int, retry_after_s: float | None, backoff: Backoff, jitter: float
) -> float:
    """Exponential backoff with equal jitter, never shorter than Retry-After, capped."""
    exponential = min(backoff.max_delay_s, backoff.base_delay_s * 2 ** (failures - 1))
    delay = exponential / 2 + exponential / 2 * jitter
    if retry_after_s is not None:
        delay = max(delay, retry_after_s)
    return min(delay, backoff.max_delay_s)


def after_input_too_long(state: StepState) -> Decision:
    """Escalate to a later, larger model when the input fits no model of this step."""
    return escalate_or_review(state, INPUT_TOO_LONG)


def escalate_or_review(state: StepState, reason: str) -> Decision:
    if state.step + 1 < state.route_length:
        return Escalate(state.step + 1, reason)
    return Review(reason)
