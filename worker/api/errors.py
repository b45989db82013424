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


class PayloadTooLargeError(Exception):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"request body is {size} bytes; the limit is {limit} bytes")


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _request_invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"field": ".".join(str(p) for p in e["loc"] if p != "body"), "message": e["msg"]}
            for e in exc.errors()
        ]
        fields = ", ".join(d["field"] or "body" for d in details)
        return error_response(422, "invalid_request", f"request is invalid at: {fields}",
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

    @app.exception_handler(PayloadTooLargeError)
    async def _too_large(_: Request, exc: PayloadTooLargeError) -> JSONResponse:
        return error_response(413, "payload_too_large", f"{exc}; send a smaller input")

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> JSONResponse:
        return error_response(exc.status_code, "http_error", str(exc.detail))
