"""SQLAlchemy models: the system of record of Sluice.

Importing this package registers every table on `Base.metadata`, which Alembic compares
against the migrations.
"""

from models.base import Base
from models.intake import (
    ApiKey,
    CallbackAttempt,
    CallbackOutbox,
    IdempotencyKey,
    OutboxState,
    WebhookSecret,
)
from models.job import Attempt, Job, JobState, LLMCall, Tenant
from models.records import DocumentExtraction, DocumentLineItem, TicketClassification
from models.review import AppSecret, Reviewer, ReviewEvent, ReviewItem, ReviewState

__all__ = [
    "ApiKey",
    "AppSecret",
    "Attempt",
    "Base",
    "CallbackAttempt",
    "CallbackOutbox",
    "DocumentExtraction",
    "DocumentLineItem",
    "IdempotencyKey",
    "Job",
    "JobState",
    "LLMCall",
    "OutboxState",
    "ReviewEvent",
    "ReviewItem",
    "ReviewState",
    "Reviewer",
    "Tenant",
    "TicketClassification",
    "WebhookSecret",
]
