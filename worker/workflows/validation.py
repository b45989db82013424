"""Output validation in layers: JSON parse, Pydantic schema, business rules.

Each layer returns a list of `ValidationIssue`s that name the field, the value and the rule,
so a repair prompt, a review item and a log line can all state exactly what was wrong.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, PlainSerializer, ValidationError

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
    """Return the value in JSON types, ready for a JSONB column.

    PostgreSQL JSONB cannot store NUL characters, which a model's output may contain,
    so they become U+FFFD in the quoted value.
    """
    if isinstance(value, Decimal | date):
        return str(value)
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, list):
        return [_jsonable(item) for item in value]
    if isinstance(value, dict):
        return {_jsonable(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, int | float | bool) or value is None:
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


def nul_issues(data: Any, path: str = "") -> list[ValidationIssue]:
    """Name every string that contains a NUL character, which PostgreSQL text rejects."""
    if isinstance(data, str):
        if "\x00" not in data:
            return []
        return [ValidationIssue("schema", path or "$", data, "no_nul",
                                "text must not contain NUL (\\u0000) characters")]
    if isinstance(data, dict):
        items = list(data.items())
    elif isinstance(data, list):
        items = list(enumerate(data))
    else:
        return []
    return [issue for key, value in items
            for issue in nul_issues(value, f"{path}.{key}" if path else str(key))]


def _to_decimal(value: Any) -> Any:
    """Accept JSON integers, Decimals parsed from JSON and decimal strings; reject floats.

    A float here means someone parsed JSON without `parse_float=Decimal`, which may already
    have rounded the amount, so it is refused rather than converted.
    """
    if isinstance(value, bool | float):
        raise ValueError("amount must be a decimal string or JSON number parsed as Decimal")
    if isinstance(value, int | Decimal):
        return _plausible_amount(Decimal(value))
    if isinstance(value, str) and _DECIMAL_TEXT.match(value.strip()):
        try:
            return _plausible_amount(Decimal(value.strip()))
        except InvalidOperation as exc:
            raise ValueError(f"{value!r} is not a decimal amount") from exc
    raise ValueError("amount must be a plain decimal such as 1234.50 (no symbols or separators)")


# Bounds that no business document reaches; they keep absurd model output (1e300) out of
# the database, where unbounded NUMERIC would otherwise store it.
MAX_AMOUNT = Decimal(10) ** 15
MAX_DECIMAL_PLACES = 10


def _plausible_amount(amount: Decimal) -> Decimal:
    if not amount.is_finite() or abs(amount) >= MAX_AMOUNT:
        raise ValueError(f"amount must be below {MAX_AMOUNT:,} in absolute value")
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -MAX_DECIMAL_PLACES:
        raise ValueError(f"amount must have at most {MAX_DECIMAL_PLACES} decimal places")
    return amount


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


def _reject_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("text must not contain NUL (\\u0000) characters; remove them")
    return value


# Input text is stored in PostgreSQL, which cannot hold NUL characters.
NoNulText = Annotated[str, AfterValidator(_reject_nul)]
Money = Annotated[Decimal, BeforeValidator(_to_decimal), PlainSerializer(str, return_type=str)]
IsoDate = Annotated[date, BeforeValidator(_to_date), PlainSerializer(str, return_type=str)]
