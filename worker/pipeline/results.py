"""The one path by which a validated output becomes a record.

Both an automatic success (`run.Attempt.record`) and a reviewer's approved correction
call `save_record` inside the transaction that moves the job to `succeeded`, so
everything that must happen when a job succeeds is written once, here. That is the
record and, if the job or its tenant has a callback URL, the callback to the caller.
"""

from __future__ import annotations

import uuid

from pydantic import BaseModel
from sqlalchemy.orm import Session

from models import JobState
from worker.callbacks.outbox import write_callback
from worker.workflows import Workflow


def save_record(session: Session, workflow: Workflow, job_id: uuid.UUID,
                output: BaseModel) -> None:
    """Write the workflow's record of an output that passed every validation layer."""
    workflow.write_record(session, job_id, output)
    write_callback(session, job_id, JobState.SUCCEEDED, output)
