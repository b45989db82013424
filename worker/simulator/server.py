"""HTTP server for the OpenAI Chat Completions API whose responses come from the stand-in model.

Tests, the demo and benchmarks point the `openai` SDK at this server instead of a paid
provider. Every chat completion goes through `admit` (which may reject it) and then `answer`.
Each request is recorded in an in-memory log that `GET /_simulator/requests` returns.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections import deque
from typing import Any, Literal

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from worker.simulator import standin

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "sluice-standin"


class SimulatorSettings(BaseModel):
    """Behaviour of one simulator instance."""

    model_config = ConfigDict(extra="forbid")

    latency_ms: float = Field(
        default=0.0, ge=0, description="Delay added before each chat completion response, in ms."
    )
    models: list[str] | None = Field(
        default=None,
        description="Model names that requests may use. None accepts any name.",
    )
    request_log_size: int = Field(
        default=100_000,
        gt=0,
        description="Maximum number of request log entries, beyond which the oldest are dropped.",
    )


class _Message(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None


class _ResponseFormat(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: Literal["text", "json_object", "json_schema"]
    json_schema: dict[str, Any] | None = None


class ChatRequest(BaseModel):
    """The fields of a chat completion request that the simulator reads."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    messages: list[_Message] = Field(min_length=1)
    response_format: _ResponseFormat | None = None
    stream: bool | None = False
    n: int | None = 1
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)

    def output_token_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


class ApiError(Exception):
    """An error response in the OpenAI format, with the outcome recorded in the request log."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        outcome: str,
        param: str | None = None,
        code: str | None = None,
        error_type: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.outcome = outcome
        self.param = param
        self.code = code
        self.error_type = error_type

    def response(self) -> JSONResponse:
        body = {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": self.code,
            }
        }
        return JSONResponse(body, status_code=self.status)


class RequestLog:
    """In-memory record of chat completion requests, for measuring what a client sent."""

    def __init__(self, max_entries: int) -> None:
        self._entries: deque[dict[str, Any]] = deque(maxlen=max_entries)

    def record(
        self,
        *,
        model: str | None,
        prompt_tokens: int,
        completion_tokens: int,
        status: int,
        outcome: str,
    ) -> None:
        self._entries.append(
            {
                "time": time.time(),
                "model": model,
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "status": status,
                "outcome": outcome,
            }
        )

    def entries(self) -> list[dict[str, Any]]:
        return list(self._entries)

    def clear(self) -> int:
        """Remove all entries and return how many there were."""
        count = len(self._entries)
        self._entries.clear()
        return count


def parse_chat_request(raw_body: bytes) -> ChatRequest:
    """Parse and validate a request body, raising ApiError (400) when it is invalid."""
    try:
        body = json.loads(raw_body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(
            400, f"request body is not valid JSON: {exc}", outcome="invalid_request"
        ) from exc
    if not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object", outcome="invalid_request")
    try:
        request = ChatRequest.model_validate(body)
    except ValidationError as exc:
        raise _validation_error(exc) from exc
    if request.stream:
        raise ApiError(
            400,
            "stream=true is not supported by the simulator; send the request without stream",
            outcome="invalid_request",
            param="stream",
        )
    if request.n not in (None, 1):
        raise ApiError(
            400,
            f"n={request.n} is not supported by the simulator; it returns exactly 1 choice",
            outcome="invalid_request",
            param="n",
        )
    return request


def _validation_error(exc: ValidationError) -> ApiError:
    first = exc.errors()[0]
    param = ""
    for part in first["loc"]:
        if isinstance(part, int):
            param += f"[{part}]"
        elif param:
            param += f".{part}"
        else:
            param = str(part)
    message = f"invalid request: {param or 'body'}: {first['msg']}"
    return ApiError(400, message, outcome="invalid_request", param=param or None)


def admit(request: ChatRequest, settings: SimulatorSettings) -> ApiError | None:
    """Return an error that rejects the request before the stand-in runs, or None to accept it.

    Rate limits and fault injection plug in here, so that a rejected request never reaches
    the stand-in model and is recorded with its own outcome.
    """
    if settings.models is not None and request.model not in settings.models:
        return ApiError(
            404,
            f"The model '{request.model}' does not exist; the simulator accepts: "
            f"{', '.join(settings.models)}",
            outcome="model_not_found",
            param="model",
            code="model_not_found",
        )
    return None


def answer(request: ChatRequest) -> dict[str, Any]:
    """Run the stand-in model and build a chat.completion object.

    Token counts are estimates (see `standin.estimate_prompt_tokens`). When the request
    sets max_completion_tokens or max_tokens below the estimated output, the content is cut
    to 4 characters per allowed token and finish_reason is "length", as a real provider does.
    Raises ApiError (400) when the prompt does not follow the contract the stand-in reads.
    """
    messages = [message.model_dump() for message in request.messages]
    response_format = request.response_format.model_dump() if request.response_format else None
    try:
        output = standin.generate_output(messages, response_format)
    except standin.PromptError as exc:
        raise ApiError(400, str(exc), outcome="invalid_prompt", param="messages") from exc

    content = json.dumps(output, ensure_ascii=False)
    finish_reason = "stop"
    limit = request.output_token_limit()
    if limit is not None and standin.estimate_text_tokens(content) > limit:
        content = content[: limit * 4]
        finish_reason = "length"
    prompt_tokens = standin.estimate_prompt_tokens(messages)
    completion_tokens = standin.estimate_text_tokens(content)
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        },
    }


async def _complete(request: Request, settings: SimulatorSettings, log: RequestLog) -> JSONResponse:
    raw_body = await request.body()
    model: str | None = None
    try:
        chat_request = parse_chat_request(raw_body)
        model = chat_request.model
        rejection = admit(chat_request, settings)
        if rejection is not None:
            raise rejection
        completion = answer(chat_request)
    except ApiError as error:
        model = model or _model_name(raw_body)
        logger.warning(
            "rejected chat completion request for model %s with status %s: %s",
            model,
            error.status,
            error.message,
        )
        log.record(
            model=model,
            prompt_tokens=0,
            completion_tokens=0,
            status=error.status,
            outcome=error.outcome,
        )
        return error.response()

    if settings.latency_ms > 0:
        await asyncio.sleep(settings.latency_ms / 1000)
    usage = completion["usage"]
    log.record(
        model=model,
        prompt_tokens=usage["prompt_tokens"],
        completion_tokens=usage["completion_tokens"],
        status=200,
        outcome="ok",
    )
    return JSONResponse(completion)


def _model_name(raw_body: bytes) -> str | None:
    """Return the model named in a request body that failed validation, if it names one."""
    try:
        body = json.loads(raw_body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    model = body.get("model") if isinstance(body, dict) else None
    return model if isinstance(model, str) else None


def _model_list(settings: SimulatorSettings) -> dict[str, Any]:
    names = settings.models if settings.models is not None else [DEFAULT_MODEL]
    return {
        "object": "list",
        "data": [
            {"id": name, "object": "model", "created": 0, "owned_by": "sluice-simulator"}
            for name in names
        ],
    }


def create_app(settings: SimulatorSettings | None = None) -> FastAPI:
    """Create the simulator's FastAPI app with its own settings and request log."""
    settings = settings or SimulatorSettings()
    log = RequestLog(settings.request_log_size)
    app = FastAPI(title="Sluice provider simulator")
    app.state.settings = settings
    app.state.request_log = log

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> JSONResponse:
        return await _complete(request, settings, log)

    @app.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        return _model_list(settings)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/_simulator/requests")
    async def list_requests() -> list[dict[str, Any]]:
        return log.entries()

    @app.delete("/_simulator/requests")
    async def clear_requests() -> dict[str, int]:
        return {"cleared": log.clear()}

    return app


def serve(host: str, port: int, settings: SimulatorSettings | None = None) -> None:
    """Run the simulator with uvicorn until the process is stopped."""
    logger.info("starting provider simulator on http://%s:%s", host, port)
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")
