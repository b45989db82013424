"""Scoring of demo output against the bundled labels.

This is the only code that reads the labels. It runs after the jobs settled and compares
their stored records with the expected values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any


@dataclass
class FieldScore:
    correct: int = 0
    total: int = 0

    def add(self, ok: bool) -> None:
        self.total += 1
        self.correct += int(ok)

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.total if self.total else None


@dataclass
class Scores:
    fields: dict[str, FieldScore] = field(default_factory=dict)

    def add(self, name: str, ok: bool) -> None:
        self.fields.setdefault(name, FieldScore()).add(ok)

    def as_dict(self) -> dict[str, dict[str, Any]]:
        return {
            name: {"correct": s.correct, "total": s.total, "accuracy": s.accuracy}
            for name, s in sorted(self.fields.items())
        }


def score_ticket(scores: Scores, dataset: str, labels: dict[str, str],
                 record: dict[str, Any] | None) -> None:
    """A ticket without a record (sent to review, failed) counts as wrong."""
    for name, expected in labels.items():
        got = record.get(name) if record else None
        scores.add(f"{dataset}.{name}", got == expected)


def score_document(scores: Scores, expected: dict[str, Any],
                   record: dict[str, Any] | None) -> None:
    record = record or {}
    if "issuer" in expected:
        scores.add("invoices.issuer", _similar(record.get("issuer"), expected["issuer"]))
    if "invoice_number" in expected:
        scores.add("invoices.document_number",
                   _norm(record.get("document_number")) == _norm(expected["invoice_number"]))
    if "date" in expected:
        scores.add("invoices.issue_date", _same_date(record.get("issue_date"), expected["date"]))
    if "currency" in expected:
        scores.add("invoices.currency", record.get("currency") == expected["currency"])
    if "amount" in expected:
        scores.add("invoices.total", _same_amount(record.get("total"), expected["amount"]))


def _norm(value: Any) -> str:
    return re.sub(r"\s+", " ", str(value or "")).strip().lower()


def _similar(got: Any, expected: str) -> bool:
    """Issuer names match when one contains the other after normalising case and spaces."""
    a, b = _norm(got), _norm(expected)
    return bool(a) and (a in b or b in a)


def _same_date(got: Any, expected: str) -> bool:
    if isinstance(got, date):
        got = got.isoformat()
    return str(got) == expected


def _same_amount(got: Any, expected: Any) -> bool:
    try:
        return Decimal(str(got)) == Decimal(str(expected)).quantize(Decimal("0.01"))
    except (InvalidOperation, ValueError):
        return False
