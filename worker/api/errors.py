"""The one place where errors become HTTP responses.

Every error body has the same shape, `{"error": {"code", "message", "details"}}`, and each
condition maps to one status and one stable code that callers can branch on.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from worker.errors import InvalidInputError, JobNotFoundError, UnknownWorkflowError


def error_response(
    status: int, code: str, message: str, details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "details": details or []}}
    return JSONResponse(body, status_code=status, headers=headers)


class ApiError(Exception):
    """An error of the intake's own checks (credentials, limits, idempotency, job state).

    It carries its status, stable code and any headers, such as Retry-After, so that the one
    handler below turns every such error into the common body.
    """

    def __init__(self, status: int, code: str, message: str,
                 headers: dict[str, str] | None = None,
                 details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
        self.details = details


class PayloadTooLargeError(Exception):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"request body is {size} bytes; the limit is {limit} bytes")


def too_large_response(size: int | str, limit: int) -> JSONResponse:
    return error_response(413, "payload_too_large",
                          f"request body is {size} bytes; the limit is {limit} bytes; "
                          "send a smaller input")


def unsupported_media_response(content_type: str) -> JSONResponse:
    return error_response(415, "unsupported_media_type",
                          f"Content-Type {content_type or '(none)'!r} is not accepted; send "
                          "the job as JSON with Content-Type: application/json")


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _request_invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e["type"] == "json_invalid" for e in errors):
            position = errors[0]["loc"][-1]
            return error_response(
                400, "invalid_json",
                f"request body is not valid JSON (error at character {position}); send one "
                "JSON object with Content-Type: application/json",
            )
        details = [
            {"field": ".".join(str(p) for p in e["loc"] if p != "body") or "body",
             "message": e["msg"]}
            for e in errors
        ]
        summary = "; ".join(f"{d['field']}: {d['message']}" for d in details)
        return error_response(422, "invalid_request", f"request is invalid: {summary}",
                              details)

    @app.exception_handler(InvalidInputError)
    async def _input_invalid(_: Request, exc: InvalidInputError) -> JSONResponse:
        details = [{"field": f"input.{e['field']}", "message": e["message"]} for e in exc.errors]
        return error_response(422, "invalid_input", str(exc), details)

    @app.exception_handler(UnknownWorkflowError)
    async def _unknown_workflow(_: Request, exc: UnknownWorkflowError) -> JSONResponse:
        details = [{"field": "workflow", "message": str(exc)}]
        return error_response(422, "unknown_workflow", str(exc), details)

    @app.exception_handler(JobNotFoundError)
    async def _job_not_found(_: Request, exc: JobNotFoundError) -> JSONResponse:
        return error_response(404, "job_not_found", str(exc))

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> JSONResponse:
        return error_response(exc.status_code, "http_error", str(exc.detail))
