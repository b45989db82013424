"""Document field extraction: issuer, number, date, currency, total, tax and line items."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, Literal

import pycountry
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from models import DocumentExtraction, DocumentLineItem
from worker.workflows.base import Workflow
from worker.workflows.validation import IsoDate, Money, NoNulText, ValidationIssue

# Line items and tax must add up to the total within this many currency units, which
# absorbs per-line rounding on invoices with a few dozen lines.
TOTAL_TOLERANCE = Decimal("0.02")
EARLIEST_PLAUSIBLE_DATE = date(1990, 1, 1)
LATEST_FUTURE_DAYS = 366


class DocumentInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: NoNulText = Field(min_length=1, max_length=200_000, description="The document as text.")
    doc_type: Literal["invoice", "receipt", "contract"] = "invoice"


class LineItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str = Field(min_length=1)
    quantity: Money | None = None
    unit_price: Money | None = None
    amount: Money


class DocumentOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    issuer: str = Field(min_length=1, max_length=300)
    document_number: str | None = Field(default=None, max_length=100)
    issue_date: IsoDate
    currency: str = Field(min_length=3, max_length=3)
    total: Money
    tax: Money | None = None
    line_items: list[LineItem] = Field(default_factory=list)


class DocumentExtractionWorkflow(Workflow):
    kind = "document_extraction"
    input_model = DocumentInput
    output_model = DocumentOutput
    input_tag = "document"

    supports_chunks = True

    def output_json_schema(self) -> dict[str, Any]:
        return _provider_schema()

    def merge_chunk_outputs(self, parts: list[dict[str, Any]]) -> dict[str, Any]:
        """Header fields from the first chunk that has them, totals from the last one,
        and the line items of every chunk in order."""
        merged: dict[str, Any] = {}
        for key in ("issuer", "document_number", "issue_date", "currency"):
            merged[key] = _first_known(part.get(key) for part in parts)
        for key in ("total", "tax"):
            merged[key] = _first_known(part.get(key) for part in reversed(parts))
        merged["line_items"] = [
            item for part in parts for item in (part.get("line_items") or [])
            if isinstance(item, dict)
        ]
        return merged

    def check_rules(self, output: Any) -> list[ValidationIssue]:
        return [
            *_check_date(output.issue_date),
            *_check_currency(output.currency),
            *_check_amounts(output),
        ]

    def write_record(self, session: Session, job_id: uuid.UUID, output: Any) -> None:
        record = DocumentExtraction(
            job_id=job_id,
            issuer=output.issuer,
            document_number=output.document_number,
            issue_date=output.issue_date,
            currency=output.currency,
            total=output.total,
            tax=output.tax,
        )
        record.line_items = [
            DocumentLineItem(position=index, **item.model_dump())
            for index, item in enumerate(output.line_items)
        ]
        session.add(record)

    def read_record(self, session: Session, job_id: uuid.UUID) -> dict[str, Any] | None:
        row = session.get(DocumentExtraction, job_id)
        if row is None:
            return None
        return {
            "issuer": row.issuer,
            "document_number": row.document_number,
            "issue_date": row.issue_date,
            "currency": row.currency,
            "total": row.total,
            "tax": row.tax,
            "line_items": [item.as_dict() for item in row.line_items],
        }


def _first_known(values: Any) -> Any:
    """Return the first value that a chunk actually found (not null, empty or "unknown")."""
    for value in values:
        if value not in (None, "", "unknown"):
            return value
    return None


def _check_date(issue_date: date) -> list[ValidationIssue]:
    latest = date.today() + timedelta(days=LATEST_FUTURE_DAYS)
    if EARLIEST_PLAUSIBLE_DATE <= issue_date <= latest:
        return []
    return [ValidationIssue(
        "rule", "issue_date", issue_date, "plausible_date",
        f"issue date must lie between {EARLIEST_PLAUSIBLE_DATE} and {latest}",
    )]


def _check_currency(code: str) -> list[ValidationIssue]:
    if code.isupper() and pycountry.currencies.get(alpha_3=code) is not None:
        return []
    return [ValidationIssue(
        "rule", "currency", code, "iso_4217", "currency must be an ISO 4217 code such as EUR"
    )]


def _check_amounts(output: DocumentOutput) -> list[ValidationIssue]:
    issues = []
    if output.total < 0:
        issues.append(ValidationIssue("rule", "total", output.total, "not_negative",
                                      "total must not be negative"))
    if output.tax is not None and not Decimal(0) <= output.tax <= output.total:
        issues.append(ValidationIssue("rule", "tax", output.tax, "tax_within_total",
                                      "tax must be between 0 and the total"))
    if output.line_items:
        lines_sum = sum((item.amount for item in output.line_items), Decimal(0))
        targets = {output.total}
        if output.tax is not None:
            targets.add(output.total - output.tax)
        if all(abs(lines_sum - target) > TOTAL_TOLERANCE for target in targets):
            issues.append(ValidationIssue(
                "rule", "line_items", str(lines_sum), "lines_add_up",
                f"line item amounts add up to {lines_sum}, which matches neither the total "
                f"{output.total} nor the total minus tax (tolerance {TOTAL_TOLERANCE})",
            ))
    return issues


def _provider_schema() -> dict[str, Any]:
    """JSON schema sent to providers: money as decimal strings, every key required.

    Providers' strict modes want every property listed in `required` and no extra keys,
    so optional values are expressed as a union with null.
    """
    money = {"type": "string", "pattern": r"^-?\d+(\.\d+)?$"}
    nullable_money = {"anyOf": [money, {"type": "null"}]}
    line_item = {
        "type": "object",
        "properties": {
            "description": {"type": "string"},
            "quantity": nullable_money,
            "unit_price": nullable_money,
            "amount": money,
        },
        "required": ["description", "quantity", "unit_price", "amount"],
        "additionalProperties": False,
    }
    properties = {
        "issuer": {"type": "string"},
        "document_number": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        "issue_date": {"type": "string", "description": "YYYY-MM-DD"},
        "currency": {"type": "string", "description": "ISO 4217 code"},
        "total": money,
        "tax": nullable_money,
        "line_items": {"type": "array", "items": line_item},
    }
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }
