"""Plumbing of the review pages: sessions, login checks, CSRF tokens and rendering."""

from __future__ import annotations

import hmac
import json
import secrets
import threading
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.middleware.sessions import SessionMiddleware
from starlette.responses import Response
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Receive, Scope, Send

from models import Reviewer
from worker.db import session_scope
from worker.review.session_secret import session_secret
from worker.review.settings import get_review_settings

SESSION_COOKIE = "sluice_review"
# The session is written again when this much time passed since the last write, which
# makes `session_max_age_s` a limit on inactivity rather than on the whole login.
SESSION_REFRESH_S = 60
CSRF_FIELD = "csrf_token"

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")


class LoginRequiredError(Exception):
    """The request has no valid login; the handler redirects to the login page."""

    def __init__(self, next_path: str) -> None:
        super().__init__("login required")
        self.next_path = next_path


class CsrfError(Exception):
    """A form came without this session's CSRF token."""


class ReviewSessionMiddleware:
    """Starlette's SessionMiddleware, built on the first request.

    The signing key lives in the database (see `session_secret`), which may not be
    reachable when the application object is created, so it is read when the first
    request arrives. The cookie is limited to the path the review pages are mounted on.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._inner: ASGIApp | None = None
        self._lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        inner = self._inner
        if inner is None:
            inner = await run_in_threadpool(self._build, scope.get("root_path") or "/")
        await inner(scope, receive, send)

    def _build(self, cookie_path: str) -> ASGIApp:
        with self._lock:
            if self._inner is None:
                with session_scope() as session:
                    secret = session_secret(session)
                settings = get_review_settings()
                self._inner = SessionMiddleware(
                    self.app, secret_key=secret, session_cookie=SESSION_COOKIE,
                    max_age=settings.session_max_age_s, path=cookie_path, same_site="lax",
                    https_only=settings.https_only,
                )
            return self._inner


async def security_headers(request: Request, call_next: Any) -> Response:
    """Keep review pages out of caches and frames; they use no scripts at all."""
    response: Response = await call_next(request)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    return response


def base_path(request: Request) -> str:
    """Return the path the review pages are mounted on, such as /review."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def current_reviewer(request: Request) -> Reviewer:
    """Return the logged-in, enabled reviewer, or raise LoginRequiredError."""
    raw_id = request.session.get("reviewer_id")
    reviewer = None
    if isinstance(raw_id, str):
        try:
            reviewer_id = uuid.UUID(raw_id)
        except ValueError:
            reviewer_id = None
        if reviewer_id is not None:
            with session_scope() as session:
                reviewer = session.get(Reviewer, reviewer_id)
    if reviewer is None or reviewer.disabled:
        request.session.pop("reviewer_id", None)
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequiredError(target if request.method == "GET" else base_path(request) + "/")
    now = int(time.time())
    if now - int(request.session.get("written_at", 0)) >= SESSION_REFRESH_S:
        request.session["written_at"] = now
    return reviewer


def log_in(request: Request, reviewer: Reviewer) -> None:
    """Start a fresh session for the reviewer, with a new CSRF token."""
    request.session.clear()
    request.session["reviewer_id"] = str(reviewer.id)
    request.session["csrf"] = secrets.token_urlsafe(32)
    request.session["written_at"] = int(time.time())


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


async def checked_form(request: Request) -> FormData:
    """Parse a POSTed form and check its CSRF token against the session's in constant time."""
    form = await request.form()
    sent = form.get(CSRF_FIELD)
    expected = request.session.get("csrf")
    if not (isinstance(sent, str) and isinstance(expected, str)
            and hmac.compare_digest(sent.encode(), expected.encode())):
        raise CsrfError()
    return form


def safe_next(request: Request, target: str | None) -> str:
    """Return `target` if it is a path under the review pages, else the queue."""
    base = base_path(request)
    if target:
        parts = urlsplit(target)
        if (not parts.scheme and not parts.netloc and target.startswith(base + "/")
                and not target.startswith("//") and "\\" not in target):
            return target
    return base + "/"


def flash(request: Request, message: str) -> None:
    """Keep a message for the next page the reviewer sees."""
    request.session["flash"] = message


def render(request: Request, template: str, context: dict[str, Any],
           status_code: int = 200) -> Response:
    values = {
        "base": base_path(request),
        "csrf_token": csrf_token(request),
        "csrf_field": CSRF_FIELD,
        "flash": request.session.pop("flash", None),
        **context,
    }
    return templates.TemplateResponse(request, template, values, status_code=status_code)


def _age(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min"
    return f"{hours // 24} d {hours % 24} h"


def _pretty(value: Any) -> str:
    # JSONB returns keys ordered by length, which reads as random; sorted is easier to scan.
    return json.dumps(value, indent=2, ensure_ascii=False, default=str, sort_keys=True)


templates.env.trim_blocks = True
templates.env.lstrip_blocks = True
templates.env.filters["age"] = _age
templates.env.filters["pretty"] = _pretty
