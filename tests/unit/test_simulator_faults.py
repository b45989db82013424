"""Unit tests of the simulator's fault draws, rate checks and broken responses."""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

import pytest
from pydantic import ValidationError

from worker.simulator.faults import (
    EXTRA_KEY,
    FAULT_KINDS,
    Fault,
    FaultInjector,
    check_fault_rates,
    render_content,
    violate_schema,
)
from worker.simulator.settings import SimulatorSettings

TICKET_OUTPUT: dict[str, Any] = {
    "category": "SHIPPING",
    "intent": "track_package",
    "priority": "normal",
    "language": "en",
    "summary": "Where is my parcel?",
}

EVERY_FAULT_AT_10_PERCENT = dict.fromkeys(FAULT_KINDS, 0.1)


def draw_sequence(rates: dict[str, float], seed: int, count: int) -> list[Fault | None]:
    injector = FaultInjector(rates, seed)
    return [injector.draw() for _ in range(count)]


def test_same_seed_same_sequence() -> None:
    first = draw_sequence(EVERY_FAULT_AT_10_PERCENT, seed=7, count=500)
    second = draw_sequence(EVERY_FAULT_AT_10_PERCENT, seed=7, count=500)

    assert first == second
    assert any(fault is not None for fault in first)


def test_other_seed_other_sequence() -> None:
    first = draw_sequence(EVERY_FAULT_AT_10_PERCENT, seed=7, count=500)
    second = draw_sequence(EVERY_FAULT_AT_10_PERCENT, seed=8, count=500)

    assert first != second


def test_rates_honoured_over_2000_draws() -> None:
    rates = {"server_error": 0.05, "slow": 0.1, "truncated": 0.2, "schema_violation": 0.15}
    draws = draw_sequence(rates, seed=0, count=2000)

    counts = Counter(fault.kind if fault is not None else None for fault in draws)

    # Four standard deviations of a binomial count, so a correct draw fails very rarely.
    for kind, rate in rates.items():
        tolerance = 4 * (2000 * rate * (1 - rate)) ** 0.5
        assert counts[kind] == pytest.approx(2000 * rate, abs=tolerance), kind
    assert counts[None] == pytest.approx(1000, abs=4 * (2000 * 0.25) ** 0.5)
    assert set(counts) == {*rates, None}


def test_variants_split_the_share() -> None:
    rates = {"server_error": 0.5, "schema_violation": 0.5}
    draws = draw_sequence(rates, seed=3, count=2000)

    variants = Counter((fault.kind, fault.variant) for fault in draws if fault is not None)

    assert variants[("server_error", "500")] == pytest.approx(500, abs=90)
    assert variants[("server_error", "503")] == pytest.approx(500, abs=90)
    for variant in ("missing_key", "wrong_type", "extra_key"):
        assert variants[("schema_violation", variant)] == pytest.approx(333, abs=80), variant


def test_select_follows_cumulative_rates() -> None:
    injector = FaultInjector({"slow": 0.2, "server_error": 0.1}, seed=0)

    # server_error comes first in FAULT_KINDS, so it takes [0, 0.1) and slow [0.1, 0.3).
    assert injector.select(0.0) == Fault("server_error", "500")
    assert injector.select(0.06) == Fault("server_error", "503")
    assert injector.select(0.1) == Fault("slow")
    assert injector.select(0.2999) == Fault("slow")
    assert injector.select(0.3001) is None
    assert injector.select(0.9999) is None


def test_zero_rates_never_fault() -> None:
    assert draw_sequence({}, seed=1, count=200) == [None] * 200


def test_full_rate_always_faults() -> None:
    draws = draw_sequence({"stall": 1.0}, seed=1, count=200)

    assert draws == [Fault("stall")] * 200


@pytest.mark.parametrize(
    ("rates", "message"),
    [
        ({"stall": 1.5}, "stall_rate must be between 0 and 1, got 1.5"),
        ({"slow": -0.1}, "slow_rate must be between 0 and 1, got -0.1"),
        ({"slow": float("nan")}, "slow_rate must be between 0 and 1"),
        ({"timeout": 0.1}, "unknown fault kind 'timeout'"),
        (
            {"server_error": 0.6, "truncated": 0.5},
            "fault rates must add up to at most 1, but server_error_rate=0.6 + "
            "truncated_rate=0.5 = 1.1",
        ),
    ],
)
def test_invalid_rates_rejected(rates: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        check_fault_rates(rates)
    with pytest.raises(ValueError, match=re.escape(message)):
        FaultInjector(rates, seed=0)


def test_rates_summing_to_one_accepted() -> None:
    check_fault_rates(dict.fromkeys(FAULT_KINDS, 1 / 7))


def test_settings_name_invalid_rate() -> None:
    with pytest.raises(ValidationError) as caught:
        SimulatorSettings(error_in_200_rate=1.2)

    assert caught.value.errors()[0]["loc"] == ("error_in_200_rate",)


def test_settings_reject_rate_sum() -> None:
    expected = re.escape("stall_rate=0.4 + malformed_json_rate=0.7 = 1.1")
    with pytest.raises(ValidationError, match=expected):
        SimulatorSettings(stall_rate=0.4, malformed_json_rate=0.7)


def test_settings_list_fault_rates() -> None:
    settings = SimulatorSettings(slow_rate=0.25, schema_violation_rate=0.5)

    assert settings.fault_rates() == {
        "server_error": 0.0,
        "slow": 0.25,
        "stall": 0.0,
        "error_in_200": 0.0,
        "truncated": 0.0,
        "malformed_json": 0.0,
        "schema_violation": 0.5,
    }


def test_no_fault_renders_json() -> None:
    content, finish_reason = render_content(TICKET_OUTPUT, None)

    assert json.loads(content) == TICKET_OUTPUT
    assert finish_reason == "stop"


@pytest.mark.parametrize("kind", ["server_error", "slow", "stall", "error_in_200"])
def test_other_faults_keep_content(kind: str) -> None:
    content, finish_reason = render_content(TICKET_OUTPUT, Fault(kind))

    assert json.loads(content) == TICKET_OUTPUT
    assert finish_reason == "stop"


def test_truncated_cuts_json_midway() -> None:
    full = json.dumps(TICKET_OUTPUT)

    content, finish_reason = render_content(TICKET_OUTPUT, Fault("truncated"))

    assert finish_reason == "length"
    assert full.startswith(content)
    assert len(content) == len(full) // 2
    with pytest.raises(json.JSONDecodeError):
        json.loads(content)


def test_malformed_json_is_prose_with_brace() -> None:
    content, finish_reason = render_content(TICKET_OUTPUT, Fault("malformed_json"))

    assert finish_reason == "stop"
    assert "{" in content
    assert "SHIPPING" in content
    with pytest.raises(json.JSONDecodeError):
        json.loads(content)
    with pytest.raises(json.JSONDecodeError):
        json.loads(content[content.index("{") : content.rindex("}") + 1])


def test_schema_violation_missing_key() -> None:
    content, _ = render_content(TICKET_OUTPUT, Fault("schema_violation", "missing_key"))

    output = json.loads(content)

    assert "category" not in output
    assert set(output) == set(TICKET_OUTPUT) - {"category"}


def test_schema_violation_wrong_type() -> None:
    content, _ = render_content(TICKET_OUTPUT, Fault("schema_violation", "wrong_type"))

    output = json.loads(content)

    assert output["category"] == len("SHIPPING")
    assert output["summary"] == TICKET_OUTPUT["summary"]


def test_schema_violation_extra_key() -> None:
    content, _ = render_content(TICKET_OUTPUT, Fault("schema_violation", "extra_key"))

    output = json.loads(content)

    assert output[EXTRA_KEY] == 0.9
    assert {key: output[key] for key in TICKET_OUTPUT} == TICKET_OUTPUT


def test_wrong_type_of_non_string() -> None:
    changed = violate_schema({"line_items": [{"amount": "1.00"}]}, "wrong_type")

    assert changed == {"line_items": [[{"amount": "1.00"}]]}


def test_violation_of_empty_output_adds_key() -> None:
    assert violate_schema({}, "missing_key") == {EXTRA_KEY: 0.9}


def test_violation_leaves_input_unchanged() -> None:
    original = dict(TICKET_OUTPUT)

    violate_schema(original, "missing_key")

    assert original == TICKET_OUTPUT


def test_unknown_violation_rejected() -> None:
    with pytest.raises(ValueError, match="unknown schema violation 'swap'"):
        violate_schema(TICKET_OUTPUT, "swap")
