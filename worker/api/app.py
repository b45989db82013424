"""FastAPI application: submit, list, read and cancel a tenant's jobs under `/v1/jobs`."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import select, text, tuple_, update
from sqlalchemy.orm import Session
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from models import CallbackOutbox, Job, JobState, ReviewItem
from models.base import utcnow
from worker import tasks
from worker.api.auth import Caller, raw_body, read_caller, write_caller
from worker.api.errors import (
    ApiError,
    error_response,
    install_error_handlers,
    too_large_response,
    unsupported_media_response,
)
from worker.api.guards import check_backpressure, check_intake_rate
from worker.api.idempotency import body_sha256, create_once, find_job, request_key
from worker.api.metrics import install_metrics
from worker.api.schemas import (
    ErrorBody,
    JobAccepted,
    JobCreate,
    JobPage,
    JobPublic,
    ReviewSummary,
)
from worker.callbacks.outbox import redeliver, write_callback
from worker.config import get_config
from worker.db import session_scope
from worker.doctor import check_migrations
from worker.errors import JobNotFoundError
from worker.pipeline import store
from worker.review.app import create_review_app
from worker.settings import get_settings
from worker.workflows import get_workflow

logger = logging.getLogger(__name__)

CANCELLABLE = (JobState.RECEIVED, JobState.QUEUED)


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
        # Only job creation has a body; `POST /v1/jobs/{id}/cancel` is sent without one.
        if (scope["path"] == "/v1/jobs"
                and content_type.split(";")[0].strip().lower() != "application/json"):
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
        "their state and validated results. Every /v1 request carries a tenant API key "
        "(`Authorization: Bearer slk_...`). Requests that create or cancel a job are also "
        "signed the Standard Webhooks way (`webhook-id`, `webhook-timestamp`, "
        "`webhook-signature`) unless the tenant accepts unsigned requests.",
    )
    install_error_handlers(app)
    install_metrics(app)
    app.add_middleware(BodyGuard, limit=get_settings().max_input_bytes)

    app.post("/v1/jobs", status_code=202, response_model=JobAccepted,
             openapi_extra={"parameters": SIGNED_REQUEST_HEADERS},
             responses={
                 200: {"model": JobAccepted,
                       "description": "A repeated request (same idempotency key and body): "
                       "the job it created first"},
                 **error_docs(401, 409, 413, 415, 422, 429)})(submit_job)
    app.get("/v1/jobs", response_model=JobPage, responses=error_docs(401, 422))(list_jobs)
    app.get("/v1/jobs/{job_id}", response_model=JobPublic,
            responses=error_docs(401, 404))(read_job)
    app.post("/v1/jobs/{job_id}/cancel", response_model=JobPublic,
             openapi_extra={"parameters": SIGNED_REQUEST_HEADERS},
             responses=error_docs(401, 404, 409))(cancel_job)
    app.post("/v1/jobs/{job_id}/callbacks/redeliver",
             responses=error_docs(401, 404, 409))(redeliver_callbacks)
    app.get("/healthz", include_in_schema=False)(health)
    app.get("/readyz", include_in_schema=False)(ready)
    app.mount("/review", create_review_app())
    return app


SIGNED_REQUEST_HEADERS = [
    {"name": "webhook-id", "in": "header", "required": False,
     "description": "Unique message id; also the idempotency key when Idempotency-Key is "
     "absent.", "schema": {"type": "string"}, "example": "msg_2b8f0e6a1c37"},
    {"name": "webhook-timestamp", "in": "header", "required": False,
     "description": "Unix time in seconds; at most 300 s from the server's clock.",
     "schema": {"type": "string"}, "example": "1767225600"},
    {"name": "webhook-signature", "in": "header", "required": False,
     "description": "Space-separated `v1,<base64 HMAC-SHA256 of id.timestamp.raw_body>`.",
     "schema": {"type": "string"},
     "example": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="},
    {"name": "Idempotency-Key", "in": "header", "required": False,
     "description": "Repeating a request with this key returns the first job, for 7 days.",
     "schema": {"type": "string", "maxLength": 255}},
]

ERROR_EXAMPLES = {
    401: ("Missing or invalid API key or signature", "invalid_signature",
          "no webhook-signature entry matches the raw body under any active secret of the "
          "tenant; sign the exact bytes sent"),
    404: ("No such job for this tenant", "job_not_found",
          "job 0193b0c4-5f1e-7c4a-9d51-2b8f0e6a1c37 does not exist"),
    409: ("Idempotency key reused with another body, or job no longer cancellable",
          "idempotency_conflict", "idempotency key 'crm-48213' was already used for job "
          "0193b0c4-5f1e-7c4a-9d51-2b8f0e6a1c37 with a different request body; send a new key "
          "for a new job, or the same body to get that job back"),
    413: ("Body too large", "payload_too_large",
          "request body is 300000 bytes; the limit is 256000 bytes; send a smaller input"),
    415: ("Body is not JSON", "unsupported_media_type",
          "Content-Type 'text/plain' is not accepted; send the job as JSON with "
          "Content-Type: application/json"),
    422: ("Invalid workflow, input or query", "invalid_input",
          "input for workflow 'support_tickets' is invalid: text: Field required"),
    429: ("Rate limit or backpressure; see Retry-After", "rate_limited",
          "tenant acme may submit 60 job(s) per minute; retry after 12 s"),
}


def error_docs(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for error statuses, each with an example of the common body."""
    docs: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        description, code, message = ERROR_EXAMPLES[status]
        example = {"error": {"code": code, "message": message, "details": []}}
        docs[status] = {"model": ErrorBody, "description": description,
                        "content": {"application/json": {"example": example}}}
    return docs


def submit_job(
    body: JobCreate, request: Request, response: Response,
    caller: Annotated[Caller, Depends(write_caller)],
    raw: Annotated[bytes, Depends(raw_body)],
) -> JobAccepted:
    """Store the job, then publish its id; the job is durable before this returns 202.

    A request with an idempotency key that was already used returns the first job with 200.
    """
    check_intake_rate(caller.tenant_id, caller.intake_per_minute, time.time())
    key = request_key(request.headers, caller.webhook_id)
    body_hash = body_sha256(raw)
    if key is not None:
        with session_scope() as session:
            earlier = find_job(session, caller.tenant_id, key, body_hash)
        if earlier is not None:
            return replayed(earlier, response)

    workflow = get_workflow(get_config(), body.workflow)
    job_input = workflow.validate_input(body.input).model_dump(mode="json")

    def insert_job(session: Session) -> uuid.UUID:
        job = store.create_job(session, caller.tenant_id, body.workflow, job_input,
                               body.external_id)
        job.callback_url = body.callback_url
        session.flush()
        return job.id

    with session_scope() as session:
        check_backpressure(session, caller.tenant_id, caller.max_queued_jobs)
        if key is None:
            job_id, created = insert_job(session), True
        else:
            job_id, created = create_once(session, caller.tenant_id, key, body_hash, insert_job)
    if not created:
        return replayed(job_id, response)
    state = "queued" if tasks.publish(job_id) else "received"
    logger.info("job accepted", extra={"action": "job.accepted", "job_id": str(job_id),
                                       "tenant_id": caller.tenant_id, "workflow": body.workflow})
    return JobAccepted(id=job_id, state=state, workflow=body.workflow,
                       external_id=body.external_id)


def replayed(job_id: uuid.UUID, response: Response) -> JobAccepted:
    """Return the job that a repeated request created first, with status 200."""
    with session_scope() as session:
        job = session.get(Job, job_id)
        if job is None:
            raise JobNotFoundError(job_id)
        accepted = JobAccepted(id=job.id, state=job.state.value, workflow=job.workflow,
                               external_id=job.external_id)
        tenant_id = job.tenant_id
    response.status_code = 200
    logger.info("repeated request returned its first job",
                extra={"action": "intake.idempotent_replay", "job_id": str(job_id),
                       "tenant_id": tenant_id})
    return accepted


def read_job(job_id: uuid.UUID, caller: Annotated[Caller, Depends(read_caller)]) -> JobPublic:
    with session_scope() as session:
        job = session.get(Job, job_id)
        # Another tenant's job reads as missing, so ids of other tenants cannot be probed.
        if job is None or job.tenant_id != caller.tenant_id:
            raise JobNotFoundError(job_id)
        return job_view(session, job)


def list_jobs(
    caller: Annotated[Caller, Depends(read_caller)],
    state: Annotated[JobState | None, Query(description="Only jobs in this state.")] = None,
    workflow: Annotated[str | None, Query(max_length=100)] = None,
    external_id: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=100, description="Jobs per page.")] = 50,
    cursor: Annotated[str | None, Query(
        max_length=200, description="`next_cursor` of the previous page.")] = None,
) -> JobPage:
    """List the tenant's jobs, newest first, one page at a time."""
    query = select(Job).where(Job.tenant_id == caller.tenant_id)
    if state is not None:
        query = query.where(Job.state == state)
    if workflow is not None:
        query = query.where(Job.workflow == workflow)
    if external_id is not None:
        query = query.where(Job.external_id == external_id)
    if cursor is not None:
        created_at, last_id = decode_cursor(cursor)
        query = query.where(tuple_(Job.created_at, Job.id) < tuple_(created_at, last_id))
    query = query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit + 1)
    with session_scope() as session:
        jobs = list(session.scalars(query))
        items = [job_view(session, job) for job in jobs[:limit]]
    next_cursor = None
    if len(jobs) > limit:
        next_cursor = encode_cursor(jobs[limit - 1].created_at, jobs[limit - 1].id)
    return JobPage(items=items, next_cursor=next_cursor)


def encode_cursor(created_at: datetime, job_id: uuid.UUID) -> str:
    raw = json.dumps([created_at.isoformat(), str(job_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, job_id = json.loads(raw)
        return datetime.fromisoformat(created_at), uuid.UUID(job_id)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise ApiError(422, "invalid_request", "cursor is not a next_cursor this API returned; "
                       "start again without a cursor",
                       details=[{"field": "cursor", "message": "invalid value"}]) from exc


def cancel_job(job_id: uuid.UUID, caller: Annotated[Caller, Depends(write_caller)]) -> JobPublic:
    """Fail a job that no worker has started, with reason `cancelled`."""
    now = utcnow()
    with session_scope() as session:
        # The same compare-and-set as a worker's claim: of a cancel and a claim that race,
        # only one matches the row.
        cancelled = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.tenant_id == caller.tenant_id,
                   Job.state.in_(CANCELLABLE))
            .values(state=JobState.FAILED, reason="cancelled", finished_at=now,
                    updated_at=now, not_before=None, lease_expires_at=None)
            .returning(Job.id)
        ).first()
        job = session.get(Job, job_id)
        if job is None or job.tenant_id != caller.tenant_id:
            raise JobNotFoundError(job_id)
        if cancelled is None and job.reason == "cancelled":
            raise ApiError(409, "job_not_cancellable", f"job {job_id} is already cancelled")
        if cancelled is None:
            raise ApiError(409, "job_not_cancellable",
                           f"job {job_id} is {job.state.value}; only received or queued jobs "
                           "can be cancelled")
        write_callback(session, job_id, JobState.FAILED)
        view = job_view(session, job)
    logger.info("job cancelled", extra={"action": "job.cancelled", "job_id": str(job_id),
                                        "tenant_id": caller.tenant_id})
    return view


def redeliver_callbacks(job_id: uuid.UUID,
                        caller: Annotated[Caller, Depends(write_caller)]) -> dict[str, Any]:
    """Send the job's callbacks again, delivered or dead ones included, with their ids."""
    with session_scope() as session:
        job = session.get(Job, job_id)
        if job is None or job.tenant_id != caller.tenant_id:
            raise JobNotFoundError(job_id)
        outbox_ids = list(session.scalars(
            select(CallbackOutbox.id).where(CallbackOutbox.job_id == job_id)))
        if not outbox_ids:
            raise ApiError(409, "no_callback", f"job {job_id} has no callback to send; it has "
                           "not ended yet or neither the job nor its tenant has a callback URL")
        webhook_ids = [redeliver(session, outbox_id).webhook_id for outbox_id in outbox_ids]
    return {"job_id": str(job_id), "redelivering": webhook_ids}


def job_view(session: Any, job: Job) -> JobPublic:
    result = None
    if job.workflow in get_config().workflows:
        result = get_workflow(get_config(), job.workflow).read_record(session, job.id)
    # A job retried from review may have several items, and the newest gives its state.
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
        finished_at=job.finished_at, callback_url=job.callback_url, result=result,
        review=review,
    )


def health() -> dict[str, str]:
    return {"status": "ok"}


def ready() -> JSONResponse:
    """Report ready when the database responds and its schema is at this release's migration."""
    try:
        with session_scope() as session:
            session.execute(text("SELECT 1"))
    except Exception as exc:
        return error_response(503, "not_ready", f"database unreachable: {type(exc).__name__}")
    migrations = check_migrations()
    if not migrations.ok:
        return error_response(503, "not_ready", f"{migrations.detail}; {migrations.fix}")
    return JSONResponse({"status": "ready"})
