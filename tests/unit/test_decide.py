from __future__ import annotations

import itertools

import pytest

from worker.pipeline import decide
from worker.workflows.validation import ValidationIssue, ValidationResult

VALID = ValidationResult(output=object(), issues=[], reason=None)  # type: ignore[arg-type]
INVALID = ValidationResult(
    None, [ValidationIssue("schema", "total", "x", "decimal", "bad")], "schema_violation"
)
BACKOFF = decide.Backoff(base_delay_s=2, max_delay_s=60)


def state(step: int = 0, length: int = 2, repaired: bool = False,
          enlarged: bool = False) -> decide.StepState:
    return decide.StepState(step=step, route_length=length, repaired=repaired,
                            enlarged=enlarged)


def provider_error(failed: int, transient: bool = True, retry_after_s: float | None = None,
                   jitter: float = 0.0, current: decide.StepState | None = None,
                   ) -> decide.Decision:
    return decide.after_provider_error(
        current or state(), transient=transient, failed_attempts=failed, max_attempts=3,
        retry_after_s=retry_after_s, backoff=BACKOFF, jitter=jitter)


def test_valid_output_is_accepted() -> None:
    assert decide.after_output(state(), "stop", VALID) == decide.Accept()


def test_first_invalid_output_is_repaired() -> None:
    assert decide.after_output(state(), "stop", INVALID) == decide.Repair()


def test_invalid_after_repair_escalates() -> None:
    decision = decide.after_output(state(repaired=True), "stop", INVALID)
    assert decision == decide.Escalate(1, "schema_violation")


def test_invalid_after_repair_on_last_model_goes_to_review() -> None:
    decision = decide.after_output(state(step=1, repaired=True), "stop", INVALID)
    assert decision == decide.Review("schema_violation")


def test_cut_off_output_gets_one_larger_budget() -> None:
    assert decide.after_output(state(), "length", VALID) == decide.RetryLarger()
    assert decide.after_output(state(enlarged=True), "length", VALID) == decide.Escalate(
        1, "truncated")
    assert decide.after_output(state(step=1, enlarged=True), "length", VALID) == decide.Review(
        "truncated")


def test_transient_error_delay_doubles_with_equal_jitter() -> None:
    low = [provider_error(n, jitter=0.0) for n in (1, 2)]
    high = [provider_error(n, jitter=0.999) for n in (1, 2)]
    assert [d.delay_s for d in low] == [1, 2]  # type: ignore[union-attr]
    assert [round(d.delay_s, 2) for d in high] == [2.0, 4.0]  # type: ignore[union-attr]


def test_retry_after_header_is_honoured_up_to_the_cap() -> None:
    assert provider_error(1, retry_after_s=30) == decide.RetryLater("provider_error", 30)
    assert provider_error(1, retry_after_s=600) == decide.RetryLater("provider_error", 60)


def test_delay_never_exceeds_cap() -> None:
    assert provider_error(2, jitter=0.999, current=state()).delay_s <= 60  # type: ignore[union-attr]
    assert decide.retry_delay_s(30, None, BACKOFF, 0.999) <= 60


def test_last_attempt_transient_error_goes_to_review() -> None:
    assert provider_error(3) == decide.Review("provider_exhausted")


def test_permanent_error_escalates_along_the_route() -> None:
    assert provider_error(1, transient=False) == decide.Escalate(1, "provider_exhausted")


def test_input_too_long_escalates_then_reviews() -> None:
    assert decide.after_input_too_long(state()) == decide.Escalate(1, "input_too_long")
    assert decide.after_input_too_long(state(step=1)) == decide.Review("input_too_long")


def drive(route_length: int, outcomes: list[str]) -> int:
    """Drive the decisions with scripted call outcomes; return the calls made."""
    current = state(0, route_length)
    for calls, outcome in enumerate(outcomes, start=1):
        if outcome == "error":
            decision = provider_error(1, transient=False, current=current)
        else:
            result = VALID if outcome == "valid" else INVALID
            finish = "length" if outcome == "cut" else "stop"
            decision = decide.after_output(current, finish, result)
        if isinstance(decision, decide.Repair | decide.RetryLarger | decide.Escalate):
            current = current.after(decision)
        else:
            return calls
    raise AssertionError("outcomes ran out before the attempt settled")


@pytest.mark.parametrize("route_length", [1, 2, 3])
def test_decisions_per_attempt_stay_within_three_calls_per_step(route_length: int) -> None:
    bound = 3 * route_length
    for outcomes in itertools.product(["valid", "invalid", "cut", "error"], repeat=bound):
        assert drive(route_length, list(outcomes)) <= bound
