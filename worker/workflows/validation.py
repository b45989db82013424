"""Output validation in layers: JSON parse, Pydantic schema, business rules.

Each layer returns a list of `ValidationIssue`s that name the field, the value and the rule,
so a repair prompt, a review item and a log line can all say exactly what was wrong.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, PlainSerializer, ValidationError

# Reason codes of a failed validation, in the order the layers run.
INVALID_JSON = "invalid_json"
SCHEMA_VIOLATION = "schema_violation"
RULE_VIOLATION = "rule_violation"

_DECIMAL_TEXT = re.compile(r"^-?\d+(\.\d+)?$")
_ISO_DATE_TEXT = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class ValidationIssue:
    layer: str
    field: str
    value: Any
    rule: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["value"] = _jsonable(self.value)
        return data

    def __str__(self) -> str:
        return f"{self.field}: {self.message} (got {_jsonable(self.value)!r})"


@dataclass(frozen=True)
class ValidationResult:
    output: BaseModel | None
    issues: list[ValidationIssue]
    reason: str | None

    @property
    def ok(self) -> bool:
        return self.output is not None and not self.issues


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal | date):
        return str(value)
    if isinstance(value, dict | list | str | int | float | bool) or value is None:
        return value
    return repr(value)


def parse_json(raw: str) -> tuple[Any, list[ValidationIssue]]:
    """Parse model output; numbers with a fraction become Decimal, never float."""
    try:
        return json.loads(raw, parse_float=Decimal), []
    except (json.JSONDecodeError, TypeError) as exc:
        preview = raw[:80] if isinstance(raw, str) else raw
        issue = ValidationIssue("json", "$", preview, "json", f"output is not valid JSON: {exc}")
        return None, [issue]


def schema_issues(error: ValidationError) -> list[ValidationIssue]:
    issues = []
    for detail in error.errors():
        field = ".".join(str(part) for part in detail["loc"]) or "$"
        issues.append(
            ValidationIssue("schema", field, detail.get("input"), detail["type"], detail["msg"])
        )
    return issues


def _to_decimal(value: Any) -> Any:
    """Accept JSON integers, Decimals parsed from JSON and decimal strings; reject floats.

    A float here means someone parsed JSON without `parse_float=Decimal`, which may already
    have rounded the amount, so it is refused rather than converted.
    """
    if isinstance(value, bool | float):
        raise ValueError("amount must be a decimal string or JSON number parsed as Decimal")
    if isinstance(value, int | Decimal):
        return Decimal(value)
    if isinstance(value, str) and _DECIMAL_TEXT.match(value.strip()):
        try:
            return Decimal(value.strip())
        except InvalidOperation as exc:
            raise ValueError(f"{value!r} is not a decimal amount") from exc
    raise ValueError("amount must be a plain decimal such as 1234.50 (no symbols or separators)")


def _to_date(value: Any) -> Any:
    """Accept only ISO `YYYY-MM-DD` text; Pydantic alone would take 0 as 1970-01-01."""
    if isinstance(value, date):
        return value
    if isinstance(value, str) and _ISO_DATE_TEXT.match(value):
        try:
            return date.fromisoformat(value)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a calendar date") from exc
    raise ValueError("date must be ISO 8601 text, YYYY-MM-DD")


Money = Annotated[Decimal, BeforeValidator(_to_decimal), PlainSerializer(str, return_type=str)]
IsoDate = Annotated[date, BeforeValidator(_to_date), PlainSerializer(str, return_type=str)]
