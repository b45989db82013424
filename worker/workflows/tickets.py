"""Support-ticket classification: category, intent, priority, language and a summary."""

from __future__ import annotations

import uuid
from typing import Any, Literal

import pycountry
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from models import TicketClassification
from worker.workflows.base import Workflow
from worker.workflows.validation import NoNulText, ValidationIssue

Priority = Literal["low", "normal", "high", "urgent"]


class TicketInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: NoNulText = Field(min_length=1, max_length=20_000, description="The ticket's text.")
    subject: str | None = Field(default=None, max_length=500)


class TicketOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    category: str = Field(min_length=1, max_length=100)
    intent: str = Field(min_length=1, max_length=100)
    priority: Priority
    language: str = Field(min_length=2, max_length=3, description="ISO 639-1 code.")
    summary: str = Field(min_length=1, max_length=200)


class TicketClassificationWorkflow(Workflow):
    kind = "ticket_classification"
    input_model = TicketInput
    output_model = TicketOutput
    input_tag = "ticket"

    def prompt_values(self) -> dict[str, str]:
        intents = self.config.intents
        intent_line = (
            f"Allowed intents: {', '.join(intents)}"
            if intents
            else "Intent: a short snake_case phrase for what the customer wants."
        )
        return {"categories": ", ".join(self.config.categories), "intent_line": intent_line}

    def output_json_schema(self) -> dict[str, Any]:
        schema = TicketOutput.model_json_schema()
        schema["properties"]["category"]["enum"] = list(self.config.categories)
        if self.config.intents:
            schema["properties"]["intent"]["enum"] = list(self.config.intents)
        return schema

    def check_rules(self, output: Any) -> list[ValidationIssue]:
        issues = []
        if output.category not in self.config.categories:
            issues.append(_rule("category", output.category, "allowed_label",
                                "category is not in the workflow's category list"))
        if self.config.intents and output.intent not in self.config.intents:
            issues.append(_rule("intent", output.intent, "allowed_label",
                                "intent is not in the workflow's intent list"))
        if pycountry.languages.get(alpha_2=output.language) is None:
            issues.append(_rule("language", output.language, "iso_639_1",
                                "language is not an ISO 639-1 code such as en or de"))
        if "\n" in output.summary.strip():
            issues.append(_rule("summary", output.summary, "one_line",
                                "summary must be a single line"))
        return issues

    def write_record(self, session: Session, job_id: uuid.UUID, output: Any) -> None:
        session.add(TicketClassification(job_id=job_id, **output.model_dump()))

    def read_record(self, session: Session, job_id: uuid.UUID) -> dict[str, Any] | None:
        row = session.get(TicketClassification, job_id)
        if row is None:
            return None
        return {name: getattr(row, name) for name in TicketOutput.model_fields}


def _rule(field: str, value: Any, rule: str, message: str) -> ValidationIssue:
    return ValidationIssue("rule", field, value, rule, message)
