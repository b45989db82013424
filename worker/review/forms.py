"""The correction form: generated from a workflow's output model, read back into JSON.

The form is plain HTML built from the Pydantic fields, so a new field in `TicketOutput`
or `DocumentOutput` appears in the form without template changes. What the reviewer
submits is turned back into the JSON object a model would have returned, and then
validated by the workflow exactly like machine output.
"""

from __future__ import annotations

import json
import types
import typing
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from starlette.datastructures import FormData

from worker.workflows import Workflow
from worker.workflows.validation import ValidationIssue

# Raw outputs are at most a few thousand tokens; this bounds the search for a JSON object
# inside text that is not JSON as a whole (code fences, a sentence before the object).
MAX_OBJECT_STARTS = 20
# Blank rows offered below a list's existing rows.
BLANK_ROWS = 1


@dataclass(frozen=True)
class FieldSpec:
    """One input of the form: a scalar field of the output model."""

    name: str
    label: str
    required: bool
    choices: tuple[str, ...] = ()
    hint: str = ""

    @property
    def widget(self) -> str:
        return "select" if self.choices else "text"


@dataclass(frozen=True)
class ListSpec:
    """A list of sub-objects (such as line items), shown as a table of rows."""

    name: str
    label: str
    columns: tuple[FieldSpec, ...]


@dataclass(frozen=True)
class FormSpec:
    fields: tuple[FieldSpec | ListSpec, ...]

    def names(self) -> set[str]:
        return {spec.name for spec in self.fields}


@dataclass
class FormState:
    """Current text of every input; list rows are keyed `list.index.column`."""

    values: dict[str, str] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)

    def get(self, name: str) -> str:
        return self.values.get(name, "")


def label_choices(workflow: Workflow) -> dict[str, tuple[str, ...]]:
    """Return the configured label sets, keyed by the output field they constrain."""
    config = workflow.config
    sets = {"category": config.categories, "intent": config.intents}
    return {name: tuple(values) for name, values in sets.items() if values}


def form_spec(workflow: Workflow) -> FormSpec:
    choices = label_choices(workflow)
    specs: list[FieldSpec | ListSpec] = []
    for name, info in workflow.output_model.model_fields.items():
        item_model = _list_item_model(info.annotation)
        if item_model is not None:
            columns = tuple(_field_spec(sub_name, sub_info, {})
                            for sub_name, sub_info in item_model.model_fields.items())
            specs.append(ListSpec(name, _label(name), columns))
        else:
            specs.append(_field_spec(name, info, choices))
    return FormSpec(tuple(specs))


def _field_spec(name: str, info: FieldInfo, choices: dict[str, tuple[str, ...]]) -> FieldSpec:
    base = _strip_optional(info.annotation)
    options = choices.get(name, ())
    hint = info.description or ""
    if typing.get_origin(base) is Literal:
        options = tuple(str(arg) for arg in typing.get_args(base))
    elif base is Decimal:
        hint = hint or "decimal number such as 1234.50"
    elif base is date:
        hint = hint or "date as YYYY-MM-DD"
    return FieldSpec(name, _label(name), info.is_required() and not _allows_none(info),
                     options, hint)


def _label(name: str) -> str:
    return name.replace("_", " ").capitalize()


def _allows_none(info: FieldInfo) -> bool:
    return type(None) in typing.get_args(info.annotation)


def _strip_optional(annotation: Any) -> Any:
    """Return `X` for `X | None` and for `Annotated[X, ...]`."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        annotation = args[0] if len(args) == 1 else annotation
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def _list_item_model(annotation: Any) -> type[BaseModel] | None:
    annotation = _strip_optional(annotation)
    if typing.get_origin(annotation) is not list:
        return None
    (item,) = typing.get_args(annotation)
    return item if isinstance(item, type) and issubclass(item, BaseModel) else None


# Raw output -> form ----------------------------------------------------------------------


def parse_lenient(raw: str | None) -> dict[str, Any]:
    """Return the first JSON object found in `raw`, or {} when there is none.

    Unlike validation, this accepts an object wrapped in code fences or prose, so the
    form starts from whatever the model got right.
    """
    if not raw:
        return {}
    decoder = json.JSONDecoder(parse_float=Decimal)
    start = raw.find("{")
    for _ in range(MAX_OBJECT_STARTS):
        if start == -1:
            break
        try:
            value, _end = decoder.raw_decode(raw, start)
        except json.JSONDecodeError:
            value = None
        if isinstance(value, dict):
            return value
        start = raw.find("{", start + 1)
    return {}


def state_from_output(spec: FormSpec, output: dict[str, Any]) -> FormState:
    """Fill the form from a (possibly invalid) output object."""
    state = FormState()
    for item in spec.fields:
        value = output.get(item.name)
        if isinstance(item, FieldSpec):
            state.values[item.name] = _text(value)
            continue
        rows = [row for row in value if isinstance(row, dict)] if isinstance(value, list) else []
        for index, row in enumerate(rows):
            for column in item.columns:
                state.values[f"{item.name}.{index}.{column.name}"] = _text(row.get(column.name))
        state.rows[item.name] = len(rows) + BLANK_ROWS
    return state


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, Decimal | int) and not isinstance(value, bool):
        return str(value)
    return json.dumps(value, default=str, ensure_ascii=False)


# Submitted form -> output ----------------------------------------------------------------


def state_from_form(spec: FormSpec, form: FormData, extra_rows: int = 0) -> FormState:
    """Read the submitted inputs; rows ticked for removal and blank rows are dropped."""
    state = FormState()
    for item in spec.fields:
        if isinstance(item, FieldSpec):
            state.values[item.name] = _form_text(form, item.name)
            continue
        kept_rows = 0
        for index in _row_indexes(form, item.name):
            prefix = f"{item.name}.{index}."
            cells = {column.name: _form_text(form, prefix + column.name)
                     for column in item.columns}
            if form.get(prefix + "remove") or not any(cells.values()):
                continue
            for name, text in cells.items():
                state.values[f"{item.name}.{kept_rows}.{name}"] = text
            kept_rows += 1
        state.rows[item.name] = kept_rows + BLANK_ROWS + extra_rows
    return state


def _form_text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _row_indexes(form: FormData, list_name: str) -> list[int]:
    indexes = set()
    for key in form:
        head, _, rest = key.partition(".")
        index, _, _column = rest.partition(".")
        if head == list_name and index.isdigit():
            indexes.add(int(index))
    return sorted(indexes)


def output_from_state(spec: FormSpec, state: FormState) -> dict[str, Any]:
    """Build the JSON object the reviewer means; empty optional inputs become null.

    Every value stays text: money and dates are decimal and ISO strings, which is what
    the schema accepts from a model too.
    """
    output: dict[str, Any] = {}
    for item in spec.fields:
        if isinstance(item, FieldSpec):
            output[item.name] = _value(item, state.get(item.name))
            continue
        rows = []
        for index in range(state.rows.get(item.name, 0)):
            prefix = f"{item.name}.{index}."
            cells = {column.name: state.get(prefix + column.name) for column in item.columns}
            if any(cells.values()):
                rows.append({column.name: _value(column, cells[column.name])
                             for column in item.columns})
        output[item.name] = rows
    return output


def _value(spec: FieldSpec, text: str) -> str | None:
    if text == "" and not spec.required:
        return None
    return text


# Validation issues -> messages beside the inputs -----------------------------------------


def errors_by_input(spec: FormSpec, issues: list[ValidationIssue]) -> dict[str, list[str]]:
    """Group issue messages by the input they belong to; "" collects the rest.

    Issues name fields as dotted paths (`line_items.0.amount`), which are the inputs'
    names, so most map directly; a rule about a whole list goes above its table.
    """
    names = spec.names()
    grouped: dict[str, list[str]] = {}
    for issue in issues:
        key = issue.field if issue.field.split(".")[0] in names else ""
        # Pydantic prefixes messages of custom validators; beside a field it is noise.
        grouped.setdefault(key, []).append(issue.message.removeprefix("Value error, "))
    return grouped
