"""Request and response bodies of the intake API."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator


class JobCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{
                "workflow": "support_tickets",
                "input": {"text": "I was charged twice for order 1234, please refund one."},
                "external_id": "zendesk-48213",
                "callback_url": "https://crm.example.com/hooks/sluice",
            }]
        },
    )

    workflow: str = Field(min_length=1, max_length=100, description="A configured workflow.")
    input: dict[str, Any] = Field(description=(
        "The workflow's input. Ticket classification: `text` (1-20,000 characters) and "
        "optional `subject`. Document extraction: `text` (1-200,000 characters, such as "
        "`pdftotext -layout` output) and optional `doc_type` (invoice, receipt, contract)."
    ))
    external_id: str | None = Field(
        default=None, max_length=200, description="The caller's own id, echoed back."
    )
    callback_url: str | None = Field(
        default=None, max_length=2000,
        description="Where to send this job's callback; unset uses the tenant's callback URL.",
    )

    @field_validator("callback_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an absolute http:// or https:// URL with a host")
        return value


class JobAccepted(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "0193b0c4-5f1e-7c4a-9d51-2b8f0e6a1c37", "state": "queued",
        "workflow": "support_tickets", "external_id": "zendesk-48213",
    }]})

    id: uuid.UUID
    state: str
    workflow: str
    external_id: str | None


class ReviewSummary(BaseModel):
    id: uuid.UUID
    reason: str
    state: str
    errors: list[dict[str, Any]]


class JobPublic(BaseModel):
    id: uuid.UUID
    tenant_id: str
    workflow: str
    external_id: str | None
    state: str
    reason: str | None
    attempts: int = Field(description="Attempts started, deferred ones included.")
    deferrals: int = Field(description="Attempts that do not count against the attempt "
                           "limit: those that only waited (rate limit, budget) and, after a "
                           "reviewer's retry, all attempts before it.")
    not_before: datetime | None = Field(
        default=None, description="When a waiting job is due again.")
    cost_usd: Decimal = Field(description="Price of every LLM call of the job so far, in USD.")
    created_at: datetime
    finished_at: datetime | None
    callback_url: str | None = Field(default=None, description="The job's own callback URL.")
    result: dict[str, Any] | None = Field(description="The validated record once succeeded.")
    review: ReviewSummary | None = None

    @field_serializer("cost_usd")
    def _plain_decimal(self, value: Decimal) -> str:
        return format(value.normalize(), "f")


class JobPage(BaseModel):
    """One page of a tenant's jobs, newest first."""

    items: list[JobPublic]
    next_cursor: str | None = Field(
        description="Pass as `cursor` to read the next page; null on the last page.")


class ErrorInfo(BaseModel):
    code: str = Field(description="Stable code to branch on, such as invalid_signature.")
    message: str
    details: list[dict[str, Any]]


class ErrorBody(BaseModel):
    """The one shape of every error response."""

    error: ErrorInfo
