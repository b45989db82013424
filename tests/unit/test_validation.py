from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

import pytest

from worker.config import WorkflowConfig
from worker.workflows.documents import DocumentExtractionWorkflow
from worker.workflows.tickets import TicketClassificationWorkflow
from worker.workflows.validation import INVALID_JSON, RULE_VIOLATION, SCHEMA_VIOLATION

TICKETS = TicketClassificationWorkflow(
    "support",
    WorkflowConfig(kind="ticket_classification", route=["m"], categories=["ORDER", "REFUND"],
                   intents=["cancel_order", "get_refund"]),
)
DOCUMENTS = DocumentExtractionWorkflow(
    "invoices", WorkflowConfig(kind="document_extraction", route=["m"])
)


def invoice(**changes: object) -> str:
    data: dict[str, object] = {
        "issuer": "Acme GmbH", "document_number": "A-17", "issue_date": "2024-03-01",
        "currency": "EUR", "total": "119.00", "tax": "19.00",
        "line_items": [{"description": "Widget", "quantity": "2", "unit_price": "50.00",
                        "amount": "100.00"}],
    }
    data.update(changes)
    return json.dumps(data)


def test_valid_invoice_passes_with_decimal_money() -> None:
    result = DOCUMENTS.validate_output(invoice())
    assert result.ok
    assert result.output is not None
    assert result.output.total == Decimal("119.00")
    assert result.output.issue_date == date(2024, 3, 1)


def test_large_json_number_keeps_every_digit() -> None:
    raw = invoice(total=None, tax=None, line_items=[]).replace(
        '"total": null', '"total": 12345678901234.567891')
    result = DOCUMENTS.validate_output(raw)
    assert result.output is not None
    assert str(result.output.total) == "12345678901234.567891"


@pytest.mark.parametrize("bad_date", [0, 20240301, "01/03/2024", "2024-02-30", "yesterday"])
def test_non_iso_dates_are_schema_violations(bad_date: object) -> None:
    result = DOCUMENTS.validate_output(invoice(issue_date=bad_date))
    assert result.reason == SCHEMA_VIOLATION
    assert [issue.field for issue in result.issues] == ["issue_date"]


@pytest.mark.parametrize("placeholder", ["1970-01-01", "1900-01-01", "2999-12-31"])
def test_implausible_dates_break_a_rule(placeholder: str) -> None:
    result = DOCUMENTS.validate_output(invoice(issue_date=placeholder))
    assert result.reason == RULE_VIOLATION
    assert result.issues[0].rule == "plausible_date"


def test_money_with_symbols_is_rejected() -> None:
    result = DOCUMENTS.validate_output(invoice(total="€119,00"))
    assert result.reason == SCHEMA_VIOLATION
    assert result.issues[0].field == "total"
    assert result.issues[0].value == "€119,00"


def test_unknown_currency_breaks_a_rule() -> None:
    result = DOCUMENTS.validate_output(invoice(currency="EUX"))
    assert result.reason == RULE_VIOLATION
    assert result.issues[0].field == "currency"


def test_line_items_must_add_up() -> None:
    items = [{"description": "Widget", "quantity": None, "unit_price": None, "amount": "90.00"}]
    result = DOCUMENTS.validate_output(invoice(line_items=items))
    assert result.reason == RULE_VIOLATION
    assert result.issues[0].rule == "lines_add_up"
    assert "90.00" in result.issues[0].message


def test_lines_within_tolerance_pass() -> None:
    items = [{"description": "Widget", "quantity": None, "unit_price": None, "amount": "100.01"}]
    assert DOCUMENTS.validate_output(invoice(line_items=items)).ok


def test_tax_above_total_breaks_a_rule() -> None:
    result = DOCUMENTS.validate_output(invoice(tax="500.00", line_items=[]))
    assert [issue.rule for issue in result.issues] == ["tax_within_total"]


def test_not_json_is_invalid_json() -> None:
    result = TICKETS.validate_output('{"category": "ORDER",')
    assert result.reason == INVALID_JSON
    assert result.output is None


def test_json_array_is_invalid_json() -> None:
    assert TICKETS.validate_output("[1, 2]").reason == INVALID_JSON


def test_ticket_label_outside_set_breaks_a_rule() -> None:
    raw = json.dumps({"category": "SHIPPING", "intent": "cancel_order", "priority": "normal",
                      "language": "en", "summary": "Customer wants to cancel."})
    result = TICKETS.validate_output(raw)
    assert result.reason == RULE_VIOLATION
    assert result.issues[0].field == "category"
    assert result.issues[0].value == "SHIPPING"


def test_ticket_extra_key_is_schema_violation() -> None:
    raw = json.dumps({"category": "ORDER", "intent": "cancel_order", "priority": "normal",
                      "language": "en", "summary": "s", "confidence": 0.9})
    result = TICKETS.validate_output(raw)
    assert result.reason == SCHEMA_VIOLATION
    assert result.issues[0].field == "confidence"


def test_ticket_unknown_language_breaks_a_rule() -> None:
    raw = json.dumps({"category": "ORDER", "intent": "cancel_order", "priority": "high",
                      "language": "xx", "summary": "s"})
    assert TICKETS.validate_output(raw).issues[0].rule == "iso_639_1"


def test_provider_schema_lists_allowed_labels() -> None:
    schema = TICKETS.response_format("json_schema")["json_schema"]["schema"]
    assert schema["properties"]["category"]["enum"] == ["ORDER", "REFUND"]
    assert schema["additionalProperties"] is False


def test_nul_in_output_is_a_schema_issue_without_nul() -> None:
    result = DOCUMENTS.validate_output(invoice(issuer="Acme\x00GmbH"))

    assert result.reason == SCHEMA_VIOLATION
    assert [issue.field for issue in result.issues] == ["issuer"]
    assert "\x00" not in json.dumps(result.issues[0].as_dict())
