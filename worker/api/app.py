"""FastAPI application: `POST /v1/jobs` and `GET /v1/jobs/{id}`."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import select, text
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from models import Job, ReviewItem
from worker import tasks
from worker.api.errors import PayloadTooLargeError, error_response, install_error_handlers
from worker.api.schemas import JobAccepted, JobCreate, JobPublic, ReviewSummary
from worker.config import get_config
from worker.db import session_scope
from worker.errors import JobNotFoundError
from worker.pipeline import store
from worker.settings import get_settings
from worker.workflows import get_workflow

logger = logging.getLogger(__name__)

DEFAULT_TENANT = "default"


class BodySizeLimit:
    """Reject bodies over the limit while they stream in, before anything parses them."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            response = error_response(413, "payload_too_large",
                                      f"request body is {int(declared)} bytes; the limit is "
                                      f"{self.limit} bytes; send a smaller input")
            await response(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                raise PayloadTooLargeError(received, self.limit)
            return message

        await self.app(scope, counting_receive, send)


def create_app() -> FastAPI:
    app = FastAPI(
        title="Sluice intake API",
        version="1",
        description="Submit LLM jobs (ticket classification, document extraction) and read "
        "their state and validated results.",
    )
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, limit=get_settings().max_input_bytes)

    app.post("/v1/jobs", status_code=202, response_model=JobAccepted,
             responses={422: {"description": "Invalid workflow or input"},
                        413: {"description": "Body too large"}})(submit_job)
    app.get("/v1/jobs/{job_id}", response_model=JobPublic,
            responses={404: {"description": "No such job"}})(read_job)
    app.get("/healthz", include_in_schema=False)(health)
    app.get("/readyz", include_in_schema=False)(ready)
    return app


def submit_job(body: JobCreate) -> JobAccepted:
    """Store the job, then publish its id; the job is durable before this returns 202."""
    workflow = get_workflow(get_config(), body.workflow)
    job_input = workflow.validate_input(body.input).model_dump(mode="json")
    with session_scope() as session:
        job = store.create_job(session, DEFAULT_TENANT, body.workflow, job_input,
                               body.external_id)
        job_id = job.id
    state = "queued" if publish(job_id) else "received"
    logger.info("job accepted", extra={"action": "job.accepted", "job_id": str(job_id),
                                       "workflow": body.workflow})
    return JobAccepted(id=job_id, state=state, workflow=body.workflow,
                       external_id=body.external_id)


def publish(job_id: uuid.UUID) -> bool:
    """Publish the job's task; False leaves the job `received` for a later requeue."""
    try:
        tasks.enqueue(job_id)
    except Exception:
        # The job stays `received`; the periodic `sluice.requeue_stalled` task publishes it
        # once the broker is back.
        logger.exception("publishing job failed; it stays received",
                         extra={"action": "job.publish_failed", "job_id": str(job_id)})
        return False
    with session_scope() as session:
        store.mark_queued(session, job_id)
    return True


def read_job(job_id: uuid.UUID) -> JobPublic:
    with session_scope() as session:
        job = session.get(Job, job_id)
        if job is None:
            raise JobNotFoundError(job_id)
        return job_view(session, job)


def job_view(session: Any, job: Job) -> JobPublic:
    result = None
    if job.workflow in get_config().workflows:
        result = get_workflow(get_config(), job.workflow).read_record(session, job.id)
    item = session.scalar(select(ReviewItem).where(ReviewItem.job_id == job.id))
    review = None
    if item is not None:
        review = ReviewSummary(id=item.id, reason=item.reason, state=item.state.value,
                               errors=item.errors)
    return JobPublic(
        id=job.id, tenant_id=job.tenant_id, workflow=job.workflow,
        external_id=job.external_id, state=job.state.value, reason=job.reason,
        attempts=job.attempt_count, cost_usd=job.cost_usd, created_at=job.created_at,
        finished_at=job.finished_at, result=result, review=review,
    )


def health() -> dict[str, str]:
    return {"status": "ok"}


def ready() -> JSONResponse:
    try:
        with session_scope() as session:
            session.execute(text("SELECT 1"))
    except Exception as exc:
        return error_response(503, "not_ready", f"database unreachable: {type(exc).__name__}")
    return JSONResponse({"status": "ready"})
