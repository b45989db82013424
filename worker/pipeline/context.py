"""State of one attempt, shared by the pipeline's steps, and its flow-control signals."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel

from models import JobState
from worker.config import Target
from worker.pipeline import store
from worker.workflows import Workflow
from worker.workflows.validation import ValidationIssue


@dataclass(frozen=True)
class Outcome:
    """State of the job after an attempt, and the delay before its task runs again."""

    state: JobState | None
    retry_in_s: float | None = None


@dataclass
class Context:
    """Everything one attempt works with; built once by `run.load`."""

    claim: store.Claim
    job_id: uuid.UUID
    tenant_id: str
    workflow: Workflow
    job_input: BaseModel
    route: list[list[Target]]
    requests_made: int
    cost_usd: Decimal
    failed_attempts: int
    created_at: datetime
    route_log: list[dict[str, Any]] = field(default_factory=list)
    log: dict[str, Any] = field(default_factory=dict)

    def note(self, event: str, step: int, target: Target | None, reason: str | None = None,
             **extra: Any) -> None:
        """Add an event to the attempt's route log (stored with the attempt)."""
        entry: dict[str, Any] = {"event": event, "step": step}
        if target is not None:
            entry["model"] = target.key
            entry["provider"] = target.model.provider
        if reason is not None:
            entry["reason"] = reason
        entry.update(extra)
        self.route_log.append(entry)


@dataclass
class Best:
    """The most useful failed output so far, kept for the review item."""

    raw_output: str | None = None
    issues: list[ValidationIssue] = field(default_factory=list)


class Deferred(Exception):
    """The attempt must wait (rate limit, spent budget, open breakers) without failing."""

    def __init__(self, reason: str, delay_s: float) -> None:
        super().__init__(f"{reason}: wait {delay_s:.1f} s")
        self.reason = reason
        self.delay_s = delay_s


class Stopped(Exception):
    """The job must stop calling providers and go to review with `reason`."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class InputTooLong(Exception):
    """No model of the current step can take the prompt plus its output budget."""
