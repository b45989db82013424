"""The review pages: login, the queue, one item, and the actions on it."""

from __future__ import annotations

import json
import logging
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.datastructures import FormData
from starlette.responses import RedirectResponse, Response

from models import Reviewer
from models.base import utcnow
from worker import tasks
from worker.config import get_config
from worker.db import session_scope
from worker.errors import UnknownWorkflowError
from worker.review import forms, queries, service
from worker.review.accounts import authenticate
from worker.review.settings import get_review_settings
from worker.review.web import (
    base_path,
    checked_form,
    current_reviewer,
    flash,
    log_in,
    render,
    safe_next,
)
from worker.workflows import Workflow, get_workflow

logger = logging.getLogger(__name__)

router = APIRouter()

CurrentReviewer = Annotated[Reviewer, Depends(current_reviewer)]
CheckedForm = Annotated[FormData, Depends(checked_form)]

ERROR_STATUS = {
    service.ItemNotFoundError: 404,
    service.ReviewConflictError: 409,
    service.ReviewInputError: 400,
    service.RecordRejectedError: 422,
    UnknownWorkflowError: 409,
}


# Login ---------------------------------------------------------------------------------


@router.get("/login")
def login_page(request: Request, next: str = "") -> Response:
    return render(request, "login.html", {"next": next, "username": "", "error": None})


@router.post("/login")
def login(request: Request, form: CheckedForm) -> Response:
    username = str(form.get("username") or "").strip()
    password = str(form.get("password") or "")
    next_path = str(form.get("next") or "")
    with session_scope() as session:
        reviewer = authenticate(session, username, password)
    if reviewer is None:
        logger.warning("review login failed", extra={"action": "review.login_failed",
                                                     "reviewer": username[:100]})
        return render(request, "login.html", {
            "next": next_path, "username": username,
            "error": "Invalid username or password, or the account is disabled.",
        }, status_code=401)
    log_in(request, reviewer)
    logger.info("reviewer logged in", extra={"action": "review.login",
                                             "reviewer": reviewer.username})
    return RedirectResponse(safe_next(request, next_path), status_code=303)


@router.post("/logout")
def logout(request: Request, reviewer: CurrentReviewer, form: CheckedForm) -> Response:
    request.session.clear()
    logger.info("reviewer logged out", extra={"action": "review.logout",
                                              "reviewer": reviewer.username})
    return RedirectResponse(base_path(request) + "/login", status_code=303)


# Queue ---------------------------------------------------------------------------------


@router.get("/")
def queue_page(request: Request, reviewer: CurrentReviewer, workflow: str = "",
               reason: str = "", tenant: str = "", older_than_h: str = "") -> Response:
    hours, error = _parse_hours(older_than_h)
    filters = queries.QueueFilter(
        workflow=_filter_text(workflow), reason=_filter_text(reason),
        tenant=_filter_text(tenant), older_than_h=hours)
    limit = get_review_settings().queue_limit
    with session_scope() as session:
        queue = queries.open_queue(session, filters, utcnow(), limit)
    return render(request, "queue.html", {
        "reviewer": reviewer, "queue": queue, "filters": filters, "limit": limit,
        "older_than_h": older_than_h, "filter_error": error,
    })


def _filter_text(text: str) -> str | None:
    """Return the filter value, or None for no filter; NUL cannot reach a query."""
    return text.replace("\x00", "") or None


def _parse_hours(text: str) -> tuple[float | None, str | None]:
    if not text.strip():
        return None, None
    try:
        hours = float(text)
    except ValueError:
        hours = -1.0
    if not 0 <= hours <= 100_000:
        return None, f"Older than must be a number of hours such as 4 or 0.5, not {text!r}."
    return hours, None


# Item ----------------------------------------------------------------------------------


@router.get("/items/{item_id}")
def item_page(request: Request, item_id: uuid.UUID, reviewer: CurrentReviewer) -> Response:
    return render_item(request, reviewer, item_id)


def render_item(request: Request, reviewer: Reviewer, item_id: uuid.UUID, *,
                state: forms.FormState | None = None,
                errors: dict[str, list[str]] | None = None,
                message: str | None = None, status_code: int = 200) -> Response:
    """Render the item page; `state` and `errors` re-show a submitted form."""
    now = utcnow()
    with session_scope() as session:
        detail = queries.item_detail(session, item_id, now)
    config = get_config()
    workflow = _workflow_or_none(detail.job.workflow)
    spec = forms.form_spec(workflow) if workflow is not None else None
    if spec is not None and state is None:
        state = forms.state_from_output(spec, forms.parse_lenient(_best_raw_output(detail)))
    return render(request, "item.html", {
        "reviewer": reviewer, "detail": detail, "item": detail.item, "job": detail.job,
        "spec": spec, "form": state, "errors": errors or {}, "message": message,
        "holds_claim": detail.claimed_by == reviewer.username,
        "route": service.route_models(config, detail.job.workflow),
        "claim_ttl_min": get_review_settings().claim_ttl_s // 60,
    }, status_code=status_code)


def _workflow_or_none(name: str) -> Workflow | None:
    try:
        return get_workflow(get_config(), name)
    except UnknownWorkflowError:
        return None


def _best_raw_output(detail: queries.ItemDetail) -> str | None:
    """Return the review item's raw output, else the newest call's non-empty output."""
    if detail.item.raw_output:
        return detail.item.raw_output
    outputs = [call.raw_output for attempt in detail.attempts for call in attempt.calls
               if call.raw_output]
    return outputs[-1] if outputs else None


# Actions -------------------------------------------------------------------------------


@router.post("/items/{item_id}/claim")
def claim_item(request: Request, item_id: uuid.UUID, reviewer: CurrentReviewer,
               form: CheckedForm) -> Response:
    ttl_s = get_review_settings().claim_ttl_s
    return _act(request, reviewer, item_id, "Claimed; other reviewers cannot act on this "
                f"item for {ttl_s // 60} minutes.",
                lambda session: service.claim(session, item_id, reviewer, ttl_s))


@router.post("/items/{item_id}/release")
def release_item(request: Request, item_id: uuid.UUID, reviewer: CurrentReviewer,
                 form: CheckedForm) -> Response:
    return _act(request, reviewer, item_id, "Claim released.",
                lambda session: service.release(session, item_id, reviewer))


@router.post("/items/{item_id}/reject")
def reject_item(request: Request, item_id: uuid.UUID, reviewer: CurrentReviewer,
                form: CheckedForm) -> Response:
    reason = str(form.get("reason") or "")
    return _act(request, reviewer, item_id, "Rejected; the job failed with reason rejected.",
                lambda session: service.reject(session, item_id, reviewer, reason))


@router.post("/items/{item_id}/retry")
def retry_item(request: Request, item_id: uuid.UUID, reviewer: CurrentReviewer,
               form: CheckedForm) -> Response:
    model_key = str(form.get("model") or "")
    try:
        with session_scope() as session:
            job_id = service.retry(session, item_id, reviewer, get_config(), model_key)
    except (service.ReviewError, UnknownWorkflowError) as exc:
        return _action_error_page(request, reviewer, item_id, exc)
    published = tasks.publish(job_id)
    flash(request, f"Job {job_id} is queued again on {model_key}."
          + ("" if published else " Publishing its task failed; the periodic requeue will "
             "publish it."))
    return RedirectResponse(f"{base_path(request)}/items/{item_id}", status_code=303)


@router.post("/items/{item_id}/approve")
def approve_item(request: Request, item_id: uuid.UUID, reviewer: CurrentReviewer,
                 form: CheckedForm) -> Response:
    with session_scope() as session:
        detail = queries.item_detail(session, item_id, utcnow())
    workflow = _workflow_or_none(detail.job.workflow)
    if workflow is None:
        return _action_error_page(request, reviewer, item_id, UnknownWorkflowError(
            detail.job.workflow, list(get_config().workflows)))
    spec = forms.form_spec(workflow)
    if form.get("add_row"):
        state = forms.state_from_form(spec, form, extra_rows=1)
        return render_item(request, reviewer, item_id, state=state)

    state = forms.state_from_form(spec, form)
    output = forms.output_from_state(spec, state)
    try:
        with session_scope() as session:
            result = service.approve(session, item_id, reviewer, get_config(),
                                     json.dumps(output, ensure_ascii=False))
    except service.ReviewError as exc:
        return _action_error_page(request, reviewer, item_id, exc, state)
    if not result.ok:
        return render_item(
            request, reviewer, item_id, state=state,
            errors=forms.errors_by_input(spec, result.issues), status_code=422,
            message="The correction is invalid; fix the fields marked below.")
    flash(request, "Approved: the record is stored and the job succeeded.")
    return RedirectResponse(f"{base_path(request)}/items/{item_id}", status_code=303)


def _act(request: Request, reviewer: Reviewer, item_id: uuid.UUID, done: str,
         action: Any) -> Response:
    try:
        with session_scope() as session:
            action(session)
    except service.ReviewError as exc:
        return _action_error_page(request, reviewer, item_id, exc)
    flash(request, done)
    return RedirectResponse(f"{base_path(request)}/items/{item_id}", status_code=303)


def _action_error_page(request: Request, reviewer: Reviewer, item_id: uuid.UUID, error: Exception,
             state: forms.FormState | None = None) -> Response:
    status = ERROR_STATUS.get(type(error), 400)
    logger.info("review action not allowed: %s", error, extra={
        "action": "review.action_failed", "item_id": str(item_id), "reviewer": reviewer.username})
    if isinstance(error, service.ItemNotFoundError):
        return render(request, "error.html", {"reviewer": reviewer, "message": str(error)},
                      status_code=status)
    return render_item(request, reviewer, item_id, state=state, message=str(error),
                       status_code=status)
