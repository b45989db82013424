"""What every workflow provides to the pipeline.

A workflow is an input model, an output model, business rules, a prompt file and a record
writer. The pipeline uses nothing else about tickets or documents.
"""

from __future__ import annotations

import json
import string
import uuid
from importlib import resources
from typing import Any, ClassVar

from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session

from worker.config import StructuredOutput, WorkflowConfig
from worker.errors import InvalidInputError
from worker.workflows.validation import (
    INVALID_JSON,
    RULE_VIOLATION,
    SCHEMA_VIOLATION,
    ValidationIssue,
    ValidationResult,
    nul_issues,
    parse_json,
    schema_issues,
)


def load_prompt(kind: str) -> string.Template:
    text = resources.files("worker").joinpath(f"prompts/{kind}.md").read_text(encoding="utf-8")
    return string.Template(text)


class Workflow:
    """Base class; subclasses set the class attributes and the rule and record hooks."""

    kind: ClassVar[str]
    input_model: ClassVar[type[BaseModel]]
    output_model: ClassVar[type[BaseModel]]
    input_tag: ClassVar[str]

    def __init__(self, name: str, config: WorkflowConfig) -> None:
        self.name = name
        self.config = config
        self._prompt = load_prompt(self.kind)

    # Input -------------------------------------------------------------------------------

    def validate_input(self, data: Any) -> BaseModel:
        """Return the typed input or raise InvalidInputError naming each bad field."""
        try:
            return self.input_model.model_validate(data)
        except ValidationError as exc:
            errors = [
                {"field": ".".join(str(p) for p in e["loc"]) or "input", "message": e["msg"]}
                for e in exc.errors()
            ]
            raise InvalidInputError(self.name, errors) from exc

    # Prompt ------------------------------------------------------------------------------

    def prompt_values(self) -> dict[str, str]:
        return {}

    def build_messages(self, job_input: BaseModel) -> list[dict[str, str]]:
        system = self._prompt.substitute(workflow=self.kind, **self.prompt_values())
        text = str(getattr(job_input, "text", ""))
        user = f"<{self.input_tag}>\n{text}\n</{self.input_tag}>"
        return [{"role": "system", "content": system.strip()}, {"role": "user", "content": user}]

    def repair_messages(
        self, messages: list[dict[str, str]], raw_output: str, issues: list[ValidationIssue]
    ) -> list[dict[str, str]]:
        """Append the failed answer and its errors, asking the model for a corrected object."""
        listing = "\n".join(f"- {issue}" for issue in issues)
        request = (
            "Your answer was rejected for these reasons:\n"
            f"{listing}\n"
            "Reply again with the whole corrected JSON object and nothing else."
        )
        return [
            *messages,
            {"role": "assistant", "content": raw_output},
            {"role": "user", "content": request},
        ]

    def output_json_schema(self) -> dict[str, Any]:
        return self.output_model.model_json_schema()

    def response_format(self, mode: StructuredOutput) -> dict[str, Any]:
        if mode == "json_object":
            return {"type": "json_object"}
        return {
            "type": "json_schema",
            "json_schema": {"name": self.kind, "schema": self.output_json_schema(), "strict": True},
        }

    # Output ------------------------------------------------------------------------------

    def validate_output(self, raw: str | None) -> ValidationResult:
        """Run the three layers in order; the first layer that fails sets the reason."""
        data, issues = parse_json(raw or "")
        if issues:
            return ValidationResult(None, issues, INVALID_JSON)
        if not isinstance(data, dict):
            issue = ValidationIssue("json", "$", data, "object", "output must be a JSON object")
            return ValidationResult(None, [issue], INVALID_JSON)

        try:
            output = self.output_model.model_validate(data)
        except ValidationError as exc:
            return ValidationResult(None, schema_issues(exc), SCHEMA_VIOLATION)
        text_issues = nul_issues(data)
        if text_issues:
            return ValidationResult(None, text_issues, SCHEMA_VIOLATION)

        rule_issues = self.check_rules(output)
        if rule_issues:
            return ValidationResult(None, rule_issues, RULE_VIOLATION)
        return ValidationResult(output, [], None)

    def check_rules(self, output: Any) -> list[ValidationIssue]:
        raise NotImplementedError

    def merge_chunk_outputs(self, parts: list[dict[str, Any]]) -> dict[str, Any]:
        """Combine the outputs of a document's chunks; only chunkable workflows override."""
        raise NotImplementedError(f"workflow kind {self.kind} cannot be split into chunks")

    supports_chunks: ClassVar[bool] = False

    # Record ------------------------------------------------------------------------------

    def write_record(self, session: Session, job_id: uuid.UUID, output: Any) -> None:
        raise NotImplementedError

    def read_record(self, session: Session, job_id: uuid.UUID) -> dict[str, Any] | None:
        raise NotImplementedError


def dump_json(output: BaseModel) -> str:
    return json.dumps(output.model_dump(mode="json"), ensure_ascii=False)
