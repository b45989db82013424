from __future__ import annotations

import itertools

import pytest

from worker.pipeline import decide
from worker.workflows.validation import ValidationIssue, ValidationResult

VALID = ValidationResult(output=object(), issues=[], reason=None)  # type: ignore[arg-type]
INVALID = ValidationResult(
    None, [ValidationIssue("schema", "total", "x", "decimal", "bad")], "schema_violation"
)


def state(step: int = 0, length: int = 2, repaired: bool = False) -> decide.StepState:
    return decide.StepState(step=step, route_length=length, repaired=repaired)


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


def test_cut_off_output_is_never_accepted() -> None:
    assert decide.after_output(state(), "length", VALID) == decide.Escalate(1, "truncated")
    assert decide.after_output(state(step=1), "length", VALID) == decide.Review("truncated")


def test_transient_error_retries_with_growing_delay() -> None:
    delays = [
        decide.after_provider_error(state(), transient=True, attempt=n, max_attempts=5,
                                    retry_after_s=None, base_delay_s=2, max_delay_s=60)
        for n in (1, 2, 3)
    ]
    assert [d.delay_s for d in delays] == [2, 4, 8]  # type: ignore[union-attr]


def test_retry_after_header_is_honoured_up_to_the_cap() -> None:
    decision = decide.after_provider_error(state(), transient=True, attempt=1, max_attempts=3,
                                           retry_after_s=30, base_delay_s=2, max_delay_s=60)
    assert decision == decide.RetryLater("provider_error", 30)
    capped = decide.after_provider_error(state(), transient=True, attempt=1, max_attempts=3,
                                         retry_after_s=600, base_delay_s=2, max_delay_s=60)
    assert capped == decide.RetryLater("provider_error", 60)


def test_last_attempt_transient_error_goes_to_review() -> None:
    decision = decide.after_provider_error(state(), transient=True, attempt=3, max_attempts=3,
                                           retry_after_s=None, base_delay_s=2, max_delay_s=60)
    assert decision == decide.Review("provider_exhausted")


def test_permanent_error_falls_back_along_the_route() -> None:
    decision = decide.after_provider_error(state(), transient=False, attempt=1, max_attempts=3,
                                           retry_after_s=None, base_delay_s=2, max_delay_s=60)
    assert decision == decide.Escalate(1, "provider_exhausted")


def simulate_attempt(route_length: int, outcomes: list[str]) -> int:
    """Drive the decisions with scripted call outcomes; return the calls made."""
    current = state(0, route_length)
    for calls, outcome in enumerate(outcomes, start=1):
        if outcome == "error":
            decision = decide.after_provider_error(
                current, transient=False, attempt=1, max_attempts=3, retry_after_s=None,
                base_delay_s=1, max_delay_s=1)
        else:
            result = VALID if outcome == "valid" else INVALID
            finish = "length" if outcome == "cut" else "stop"
            decision = decide.after_output(current, finish, result)
        if isinstance(decision, decide.Repair):
            current = decide.StepState(current.step, route_length, True)
        elif isinstance(decision, decide.Escalate):
            current = decide.StepState(decision.next_step, route_length, False)
        else:
            return calls
    raise AssertionError("outcomes ran out before the attempt settled")


@pytest.mark.parametrize("route_length", [1, 2, 3])
def test_calls_per_attempt_never_exceed_two_per_route_step(route_length: int) -> None:
    bound = 2 * route_length
    for outcomes in itertools.product(["valid", "invalid", "cut", "error"], repeat=bound):
        assert simulate_attempt(route_length, list(outcomes)) <= bound
