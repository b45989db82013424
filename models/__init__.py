"""SQLAlchemy models: the system of record of Sluice.

Importing this package registers every table on `Base.metadata`, which Alembic compares
against the migrations.
"""

from models.base import Base
from models.job import Attempt, Job, JobState, LLMCall, Tenant
from models.records import DocumentExtraction, DocumentLineItem, TicketClassification
from models.review import AppSecret, Reviewer, ReviewEvent, ReviewItem, ReviewState

__all__ = [
    "AppSecret",
    "Attempt",
    "Base",
    "DocumentExtraction",
    "DocumentLineItem",
    "Job",
    "JobState",
    "LLMCall",
    "ReviewEvent",
    "ReviewItem",
    "ReviewState",
    "Reviewer",
    "Tenant",
    "TicketClassification",
]
