"""Fault injection: the errors and broken responses that real providers return now and then.

One `random.Random(fault_seed)` draws one number in [0, 1) for each admitted request. The
number picks the fault by cumulative rate, in FAULT_KINDS order, and its position within
that fault's share picks the variant (500 or 503, or the kind of schema violation). So the
same seed and the same order of admitted requests give the same faults. Requests rejected
before admission (invalid, unknown model, rate limited) draw nothing.

Fault kinds:
- server_error: HTTP 500 or 503 with an OpenAI-style error body, without running the model.
- slow: the correct response after an extra `slow_ms`.
- stall: the correct response after `stall_s`, by which time most clients have timed out.
- error_in_200: HTTP 200 whose body is `{"error": {...}}` with no choices.
- truncated: the JSON content cut at half its length, with finish_reason "length".
- malformed_json: prose around a Python-style dict, which contains a brace but is not JSON.
- schema_violation: valid JSON without its first key, with a wrong type in its first key,
  or with an extra key.
"""

from __future__ import annotations

import json
import math
import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

FAULT_KINDS: tuple[str, ...] = (
    "server_error",
    "slow",
    "stall",
    "error_in_200",
    "truncated",
    "malformed_json",
    "schema_violation",
)

FAULT_VARIANTS: dict[str, tuple[str, ...]] = {
    "server_error": ("500", "503"),
    "schema_violation": ("missing_key", "wrong_type", "extra_key"),
}

# Faults whose response contains no completion, so the token cost is refunded.
UNANSWERED_FAULTS = frozenset({"server_error", "error_in_200"})

# Added by the extra_key violation. Sluice's output models forbid unknown keys.
EXTRA_KEY = "confidence"


@dataclass(frozen=True)
class Fault:
    """One injected fault: its kind (a FAULT_KINDS entry) and, for some kinds, a variant."""

    kind: str
    variant: str | None = None


def check_fault_rates(rates: Mapping[str, float]) -> None:
    """Raise ValueError unless every rate is in [0, 1] and their sum is at most 1.

    `rates` maps fault kinds to rates. Messages name the setting, such as `stall_rate`.
    """
    for kind, rate in rates.items():
        if kind not in FAULT_KINDS:
            raise ValueError(
                f"unknown fault kind {kind!r}; expected one of: {', '.join(FAULT_KINDS)}"
            )
        if not 0 <= rate <= 1:
            raise ValueError(f"{kind}_rate must be between 0 and 1, got {rate}")
    total = math.fsum(rates.values())
    if total > 1 + 1e-9:
        terms = " + ".join(f"{kind}_rate={rate:g}" for kind, rate in rates.items() if rate > 0)
        raise ValueError(
            f"fault rates must add up to at most 1, but {terms} = {total:g}; lower one of them"
        )


class FaultInjector:
    """Draws the fault, or None, for each admitted request from one seeded RNG.

    Thread-safe: draws take a lock, so concurrent requests each get their own number.
    """

    def __init__(self, rates: Mapping[str, float], seed: int) -> None:
        check_fault_rates(rates)
        self._rates = [(kind, float(rates.get(kind, 0.0))) for kind in FAULT_KINDS]
        self._random = random.Random(seed)
        self._lock = threading.Lock()

    def draw(self) -> Fault | None:
        """Draw one number and return the fault it selects, or None for a normal response."""
        with self._lock:
            number = self._random.random()
        return self.select(number)

    def select(self, number: float) -> Fault | None:
        """Return the fault that a number in [0, 1) selects."""
        start = 0.0
        for kind, rate in self._rates:
            if rate > 0 and number < start + rate:
                variants = FAULT_VARIANTS.get(kind)
                if not variants:
                    return Fault(kind)
                position = (number - start) / rate
                index = min(int(position * len(variants)), len(variants) - 1)
                return Fault(kind, variants[index])
            start += rate
        return None


def error_body(message: str, error_type: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": error_type, "param": None, "code": None}}


def render_content(output: dict[str, Any], fault: Fault | None) -> tuple[str, str]:
    """Return the message content and finish_reason for the stand-in's output and a fault.

    Faults other than truncated, malformed_json and schema_violation leave both unchanged.
    """
    kind = fault.kind if fault is not None else None
    if kind == "truncated":
        return truncate_content(json.dumps(output, ensure_ascii=False)), "length"
    if kind == "malformed_json":
        return malformed_content(output), "stop"
    if kind == "schema_violation" and fault is not None and fault.variant is not None:
        return json.dumps(violate_schema(output, fault.variant), ensure_ascii=False), "stop"
    return json.dumps(output, ensure_ascii=False), "stop"


def truncate_content(content: str) -> str:
    """Cut JSON text at half its length, so that it ends inside the object."""
    return content[: len(content) // 2]


def malformed_content(output: dict[str, Any]) -> str:
    """Write the output as a chatty model might: prose, then a dict with single quotes."""
    return f"Sure! Here is the result you asked for:\n{output!r}\nLet me know if you need more."


def violate_schema(output: dict[str, Any], variant: str) -> dict[str, Any]:
    """Return a copy of the output that is valid JSON but breaks the output contract.

    missing_key drops the first key, which is required in both workflows' outputs.
    wrong_type replaces the first key's value: a string by its length, anything else by a
    list. extra_key adds EXTRA_KEY, as do the other variants when the output is empty.
    """
    if variant not in FAULT_VARIANTS["schema_violation"]:
        raise ValueError(
            f"unknown schema violation {variant!r}; expected one of: "
            f"{', '.join(FAULT_VARIANTS['schema_violation'])}"
        )
    changed = dict(output)
    first_key = next(iter(changed), None)
    if first_key is None or variant == "extra_key":
        changed[EXTRA_KEY] = 0.9
    elif variant == "missing_key":
        del changed[first_key]
    else:
        value = changed[first_key]
        changed[first_key] = len(value) if isinstance(value, str) else [value]
    return changed
