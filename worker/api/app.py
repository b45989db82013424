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
from worker.api.errors import (
    error_response,
    install_error_handlers,
    too_large_response,
    unsupported_media_response,
)
from worker.api.metrics import install_metrics
from worker.api.schemas import JobAccepted, JobCreate, JobPublic, ReviewSummary
from worker.config import get_config
from worker.db import session_scope
from worker.doctor import check_migrations
from worker.errors import JobNotFoundError
from worker.pipeline import store
from worker.review.app import create_review_app
from worker.settings import get_settings
from worker.workflows import get_workflow

logger = logging.getLogger(__name__)

DEFAULT_TENANT = "default"


class BodyGuard:
    """Check a request body's type and size before anything parses it.

    A body without Content-Length (chunked) is read here up to the limit and replayed to
    the application, so an oversized stream gets a 413 like a declared one.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH")
                or not scope["path"].startswith("/v1/")):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        content_type = headers.get(b"content-type", b"").decode("latin-1")
        if content_type.split(";")[0].strip().lower() != "application/json":
            await unsupported_media_response(content_type)(scope, receive, send)
            return
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit():
            if int(declared) > self.limit:
                await too_large_response(int(declared), self.limit)(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        await self._buffered(scope, receive, send)

    async def _buffered(self, scope: Scope, receive: Receive, send: Send) -> None:
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await too_large_response(f"more than {self.limit}", self.limit)(
                    scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


def create_app() -> FastAPI:
    app = FastAPI(
        title="Sluice intake API",
        version="1",
        description="Submit LLM jobs (ticket classification, document extraction) and read "
        "their state and validated results.",
    )
    install_error_handlers(app)
    install_metrics(app)
    app.add_middleware(BodyGuard, limit=get_settings().max_input_bytes)

    app.post("/v1/jobs", status_code=202, response_model=JobAccepted,
             responses={422: {"description": "Invalid workflow or input"},
                        413: {"description": "Body too large"}})(submit_job)
    app.get("/v1/jobs/{job_id}", response_model=JobPublic,
            responses={404: {"description": "No such job"}})(read_job)
    app.get("/healthz", include_in_schema=False)(health)
    app.get("/readyz", include_in_schema=False)(ready)
    app.mount("/review", create_review_app())
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
    # A job retried from review may have several items; the newest tells its state.
    item = session.scalar(select(ReviewItem).where(ReviewItem.job_id == job.id)
                          .order_by(ReviewItem.created_at.desc()).limit(1))
    review = None
    if item is not None:
        review = ReviewSummary(id=item.id, reason=item.reason, state=item.state.value,
                               errors=item.errors)
    return JobPublic(
        id=job.id, tenant_id=job.tenant_id, workflow=job.workflow,
        external_id=job.external_id, state=job.state.value, reason=job.reason,
        attempts=job.attempt_count, deferrals=job.deferrals, not_before=job.not_before,
        cost_usd=job.cost_usd, created_at=job.created_at,
        finished_at=job.finished_at, result=result, review=review,
    )


def health() -> dict[str, str]:
    return {"status": "ok"}


def ready() -> JSONResponse:
    """Ready when the database answers and its schema is at this release's migration."""
    try:
        with session_scope() as session:
            session.execute(text("SELECT 1"))
    except Exception as exc:
        return error_response(503, "not_ready", f"database unreachable: {type(exc).__name__}")
    migrations = check_migrations()
    if not migrations.ok:
        return error_response(503, "not_ready", f"{migrations.detail}; {migrations.fix}")
    return JSONResponse({"status": "ready"})
