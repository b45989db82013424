"""Property: whatever a model returns, validation yields a storable record or issues.

Outputs are arbitrary JSON values, objects with the right keys and arbitrary values,
valid outputs with one field replaced or removed, and valid outputs cut short. Every
output that passes `validate_output` is written through `save_record` into the real
database (check constraints and column types included) and read back unchanged.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from sqlalchemy.orm import Session

from tests.support import submit
from worker.config import default_config_path, load_config
from worker.db import get_engine
from worker.pipeline.results import save_record
from worker.workflows import Workflow, get_workflow
from worker.workflows.validation import INVALID_JSON, RULE_VIOLATION, SCHEMA_VIOLATION

CONFIG = load_config(default_config_path())
TICKETS = get_workflow(CONFIG, "support_tickets")
INVOICES = get_workflow(CONFIG, "invoices")

VALID = {
    "support_tickets": [
        {"category": "REFUND", "intent": "get_refund", "priority": "high", "language": "en",
         "summary": "Wants the money back."},
    ],
    "invoices": [
        {"issuer": "Acme GmbH", "document_number": "INV-7", "issue_date": "2024-01-05",
         "currency": "EUR", "total": "119.00", "tax": "19.00",
         "line_items": [{"description": "Widgets", "quantity": "2", "unit_price": "50.00",
                         "amount": "100.00"}]},
        # Without line items no rule ties the total to anything else.
        {"issuer": "Acme GmbH", "document_number": None, "issue_date": "2024-01-05",
         "currency": "EUR", "total": "119.00", "tax": None, "line_items": []},
    ],
}
LINE_ITEM_KEYS = ["line_items.description", "line_items.quantity", "line_items.unit_price",
                  "line_items.amount"]

scalars = (st.none() | st.booleans() | st.integers()
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40))
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
# Values near the valid ones, where the boundaries of validation and storage lie.
money_text = st.from_regex(r"\A-?\d{1,22}(\.\d{1,9})?\Z")
near_valid = (
    money_text
    | st.integers(min_value=-(10**22), max_value=10**22)
    | st.from_regex(r"\A\d{4}-\d{2}-\d{2}\Z")
    | st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabc", min_size=2, max_size=4)
    | st.sampled_from(["en", "de", "EN", "xx", "", "  ", "\x00", "a\x00b", "line\nbreak",
                       "EUR", "USD", "XXX", "eur", "1990-01-01", "2999-12-31"])
    | st.text(max_size=8).map(lambda text: text + "\x00")
    | st.text(min_size=95, max_size=310)
)


def _with_field(valid: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    changed = json.loads(json.dumps(valid, default=str))
    lines = changed.get("line_items")
    if not key.startswith("line_items."):
        changed[key] = value
    elif isinstance(lines, list) and lines and isinstance(lines[0], dict):
        lines[0][key.split(".", 1)[1]] = value
    return changed


@st.composite
def mutated(draw: st.DrawFn, workflow: str) -> str:
    valid = draw(st.sampled_from(VALID[workflow]))
    keys = list(valid) + (LINE_ITEM_KEYS if valid.get("line_items") else [])
    kind = draw(st.sampled_from(["replace", "near", "near", "near", "drop", "extra", "cut",
                                 "many"]))
    if kind == "replace":
        output = _with_field(valid, draw(st.sampled_from(keys)), draw(json_values))
    elif kind == "near":
        output = _with_field(valid, draw(st.sampled_from(keys)), draw(near_valid))
    elif kind == "many":
        output = valid
        for key in draw(st.lists(st.sampled_from(keys), min_size=2, max_size=4)):
            output = _with_field(output, key, draw(near_valid))
    elif kind == "drop":
        dropped = draw(st.sampled_from(list(valid)))
        output = {key: value for key, value in valid.items() if key != dropped}
    elif kind == "extra":
        output = {**valid, draw(st.text(min_size=1, max_size=8)): draw(json_values)}
    else:
        text = json.dumps(valid)
        return text[: draw(st.integers(min_value=0, max_value=len(text) - 1))]
    return json.dumps(output, default=str, ensure_ascii=False)


def raw_outputs(workflow: str) -> st.SearchStrategy[str]:
    shaped = st.fixed_dictionaries({key: json_values for key in VALID[workflow][0]})
    anything = json_values.map(json.dumps) | shaped.map(json.dumps) | st.text(max_size=60)
    return mutated(workflow) | anything


def _raw(base: dict[str, Any], **changes: Any) -> str:
    return json.dumps({**base, **changes})


TICKET, INVOICE, BARE_INVOICE = VALID["support_tickets"][0], *VALID["invoices"]
LINE = INVOICE["line_items"][0]


@pytest.fixture
def jobs(clean_db: str) -> Iterator[dict[str, uuid.UUID]]:
    yield {name: submit(name, {"text": "property test input"}) for name in VALID}


def _store_and_read(session: Session, workflow: Workflow, job_id: uuid.UUID,
                    output: Any) -> dict[str, Any] | None:
    """Write the record in a savepoint, read it back, and roll the savepoint back."""
    savepoint = session.begin_nested()
    try:
        save_record(session, workflow, job_id, output)
        session.flush()
        session.expire_all()
        return workflow.read_record(session, job_id)
    finally:
        savepoint.rollback()


def _plain(value: Any) -> Any:
    """Python values of a model or record; money compared as numbers (10.5 == 10.5000)."""
    if isinstance(value, BaseModel):
        return {name: _plain(getattr(value, name)) for name in type(value).model_fields}
    if isinstance(value, Decimal):
        return value.normalize()
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


def check(session: Session, workflow: Workflow, job_id: uuid.UUID, raw: str) -> None:
    result = workflow.validate_output(raw)
    if not result.ok:
        assert result.output is None
        assert result.issues, "a rejected output must name at least one issue"
        assert result.reason in (INVALID_JSON, SCHEMA_VIOLATION, RULE_VIOLATION)
        return
    assert result.issues == []
    stored = _store_and_read(session, workflow, job_id, result.output)
    assert stored is not None
    assert _plain(stored) == _plain(result.output)


SETTINGS = settings(max_examples=400, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


@SETTINGS
@given(raw=raw_outputs("support_tickets"))
@example(raw=_raw(TICKET, summary="Wants the\x00money back."))
def test_ticket_output_record_or_issues(jobs: dict[str, uuid.UUID], raw: str) -> None:
    with Session(get_engine()) as session:
        check(session, TICKETS, jobs["support_tickets"], raw)


@SETTINGS
@given(raw=raw_outputs("invoices"))
@example(raw=_raw(BARE_INVOICE, issuer="Acme\x00GmbH"))
@example(raw=_raw(BARE_INVOICE, total="123456789012345678.00"))
@example(raw=_raw(BARE_INVOICE, total=10**16))
@example(raw='{"issuer": "Acme GmbH", "issue_date": "2024-01-05", "currency": "EUR", '
             '"total": 1e300, "line_items": []}')
@example(raw=_raw(BARE_INVOICE, total="119.123456"))
@example(raw=_raw(INVOICE, line_items=[{**LINE, "quantity": "2.000001"}]))
@example(raw=_raw(INVOICE, line_items=[{**LINE, "unit_price": "1" + "0" * 20}]))
def test_invoice_output_record_or_issues(jobs: dict[str, uuid.UUID], raw: str) -> None:
    with Session(get_engine()) as session:
        check(session, INVOICES, jobs["invoices"], raw)


def test_valid_outputs_are_accepted(jobs: dict[str, uuid.UUID]) -> None:
    with Session(get_engine()) as session:
        for name, workflow in (("support_tickets", TICKETS), ("invoices", INVOICES)):
            for output in VALID[name]:
                assert workflow.validate_output(json.dumps(output)).ok
                check(session, workflow, jobs[name], json.dumps(output))
