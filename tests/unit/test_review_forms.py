"""The correction form built from workflow output models, and its way back to JSON."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from starlette.datastructures import FormData

from worker.config import default_config_path, load_config
from worker.review import forms
from worker.workflows import Workflow, get_workflow

CONFIG = load_config(default_config_path())


def workflow(name: str) -> Workflow:
    return get_workflow(CONFIG, name)


def spec_of(name: str) -> forms.FormSpec:
    return forms.form_spec(workflow(name))


def test_ticket_form_uses_configured_labels() -> None:
    fields = {f.name: f for f in spec_of("support_tickets").fields}

    assert list(fields) == ["category", "intent", "priority", "language", "summary"]
    category = fields["category"]
    assert isinstance(category, forms.FieldSpec)
    assert category.choices == tuple(CONFIG.workflows["support_tickets"].categories)
    priority = fields["priority"]
    assert isinstance(priority, forms.FieldSpec)
    assert priority.choices == ("low", "normal", "high", "urgent")
    language = fields["language"]
    assert isinstance(language, forms.FieldSpec)
    assert language.widget == "text"


def test_document_form_has_line_item_table() -> None:
    fields = {f.name: f for f in spec_of("invoices").fields}

    line_items = fields["line_items"]
    assert isinstance(line_items, forms.ListSpec)
    assert [c.name for c in line_items.columns] == [
        "description", "quantity", "unit_price", "amount"]
    assert [c.required for c in line_items.columns] == [True, False, False, True]
    tax = fields["tax"]
    assert isinstance(tax, forms.FieldSpec)
    assert not tax.required
    assert "decimal" in tax.hint


@pytest.mark.parametrize(("raw", "expected"), [
    ('{"a": 1}', {"a": 1}),
    ('```json\n{"a": "x"}\n```', {"a": "x"}),
    ('Here it is: {"total": 10.50} hope it helps', {"total": Decimal("10.50")}),
    ('[1, 2] then {"b": true}', {"b": True}),
    ('{"cut": "off', {}),
    ("", {}),
    (None, {}),
    ("{not json} {\"c\": null}", {"c": None}),
])
def test_parse_lenient(raw: str | None, expected: dict[str, object]) -> None:
    assert forms.parse_lenient(raw) == expected


def test_state_from_output_fills_rows_and_text() -> None:
    spec = spec_of("invoices")
    state = forms.state_from_output(spec, {
        "issuer": "Acme", "total": Decimal("10.50"), "tax": None,
        "line_items": [{"description": "A", "amount": 10}, "not an object"],
        "currency": ["EUR"],
    })

    assert state.get("issuer") == "Acme"
    assert state.get("total") == "10.50"
    assert state.get("tax") == ""
    assert state.get("currency") == '["EUR"]'
    assert state.get("line_items.0.amount") == "10"
    assert state.rows["line_items"] == 1 + forms.BLANK_ROWS


def test_form_round_trip_drops_blank_and_removed_rows() -> None:
    spec = spec_of("invoices")
    form = FormData([
        ("issuer", " Acme GmbH "), ("document_number", ""), ("issue_date", "2024-01-05"),
        ("currency", "EUR"), ("total", "10.00"), ("tax", ""),
        ("line_items.0.description", "Gone"), ("line_items.0.amount", "1"),
        ("line_items.0.remove", "1"),
        ("line_items.1.description", "Kept"), ("line_items.1.quantity", ""),
        ("line_items.1.unit_price", ""), ("line_items.1.amount", "10.00"),
        ("line_items.2.description", ""), ("line_items.2.amount", ""),
    ])

    state = forms.state_from_form(spec, form)
    output = forms.output_from_state(spec, state)

    assert output == {
        "issuer": "Acme GmbH", "document_number": None, "issue_date": "2024-01-05",
        "currency": "EUR", "total": "10.00", "tax": None,
        "line_items": [{"description": "Kept", "quantity": None, "unit_price": None,
                        "amount": "10.00"}],
    }
    assert workflow("invoices").validate_output(json.dumps(output)).ok


def test_required_blank_input_stays_for_validation_to_name() -> None:
    spec = spec_of("invoices")
    state = forms.state_from_form(spec, FormData([("issuer", "Acme"), ("total", "")]))
    output = forms.output_from_state(spec, state)

    assert output["total"] == ""
    result = workflow("invoices").validate_output(json.dumps(output))
    fields = {issue.field for issue in result.issues}
    assert {"total", "issue_date", "currency"} <= fields


def test_extra_rows_are_added_on_request() -> None:
    spec = spec_of("invoices")
    state = forms.state_from_form(spec, FormData([("line_items.0.description", "A")]),
                                  extra_rows=1)
    assert state.rows["line_items"] == 1 + forms.BLANK_ROWS + 1


def test_errors_are_grouped_by_input() -> None:
    spec = spec_of("invoices")
    output = {"issuer": "Acme", "issue_date": "2024-01-05", "currency": "EUR",
              "total": "10.00", "tax": None,
              "line_items": [{"description": "A", "amount": "x"},
                             {"description": "B", "amount": "3"}]}
    schema = workflow("invoices").validate_output(json.dumps(output))
    rules = workflow("invoices").validate_output(
        json.dumps({**output, "line_items": [{"description": "A", "amount": "3"}]}))

    schema_errors = forms.errors_by_input(spec, schema.issues)
    rule_errors = forms.errors_by_input(spec, rules.issues)

    assert list(schema_errors) == ["line_items.0.amount"]
    assert list(rule_errors) == ["line_items"]
    assert "add up" in rule_errors["line_items"][0]


def test_errors_outside_the_form_go_to_the_top() -> None:
    spec = spec_of("support_tickets")
    result = workflow("support_tickets").validate_output("[]")
    assert list(forms.errors_by_input(spec, result.issues)) == [""]
