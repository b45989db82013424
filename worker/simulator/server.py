"""HTTP server for the OpenAI Chat Completions API whose responses come from the stand-in model.

Tests, the demo and benchmarks point the `openai` SDK at this server instead of a paid
provider. Every chat completion goes through `admit`, which checks the model and the rate
limits (see `limits`) and draws an injected fault (see `faults`), and then through `answer`.
Each request is recorded in an in-memory log that `GET /_simulator/requests` returns, and
`GET /_simulator/stats` returns the totals by outcome and the requests and tokens admitted.

Token accounting: admission debits one request and the admission token cost. Once the
completion exists, the token bucket is charged its prompt plus completion tokens in place
of that cost. Requests that get no completion (server_error and error_in_200 faults, and
prompts the stand-in cannot read) have their token cost refunded but keep their request
slot, because providers generally count such requests but bill no tokens.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any, Literal

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from worker.simulator import standin
from worker.simulator.faults import (
    UNANSWERED_FAULTS,
    Fault,
    FaultInjector,
    error_body,
    render_content,
)
from worker.simulator.limits import RateLimiter
from worker.simulator.request_log import RequestLog, RequestRecord
from worker.simulator.settings import SimulatorSettings

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "sluice-standin"

# How often a delayed response checks whether the client is still connected, in seconds.
DISCONNECT_POLL_S = 0.1


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
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.outcome = outcome
        self.param = param
        self.code = code
        self.error_type = error_type
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        body = {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": self.code,
            }
        }
        return JSONResponse(body, status_code=self.status, headers=self.headers)


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


class Simulator:
    """The state of one simulator app: settings, rate limiter, fault injector and log."""

    def __init__(self, settings: SimulatorSettings) -> None:
        self.settings = settings
        self.limiter = RateLimiter(
            settings.rpm,
            settings.tpm,
            request_burst_s=settings.request_burst_s,
            token_burst_s=settings.token_burst_s,
        )
        self.faults = FaultInjector(settings.fault_rates(), settings.fault_seed)
        self.log = RequestLog(settings.request_log_size)

    def stats(self) -> dict[str, Any]:
        """Return the totals since the last reset, with each limit and how much it admitted."""
        totals = self.log.totals()
        limits: dict[str, dict[str, Any]] = dict(self.limiter.describe())
        limits["requests"]["accepted"] = totals.pop("requests_accepted")
        limits["tokens"]["accepted"] = totals.pop("tokens_accepted")
        return {**totals, "limits": limits}


@dataclass(frozen=True)
class Admission:
    """An admitted request: the token cost it was debited and the fault it drew, if any."""

    token_cost: int
    fault: Fault | None


def admission_token_cost(request: ChatRequest) -> int:
    """Return max(estimated prompt tokens, max_completion_tokens or max_tokens or 0)."""
    messages = [message.model_dump() for message in request.messages]
    prompt_tokens = standin.estimate_prompt_tokens(messages)
    return max(prompt_tokens, request.output_token_limit() or 0)


def admit(request: ChatRequest, token_cost: int, simulator: Simulator) -> Admission:
    """Admit a request or raise ApiError: 404 for an unknown model, 429 over a rate limit.

    The model is checked first, so a request for an unknown model uses no quota. An
    admitted request has taken one request and `token_cost` tokens from the rate limiter
    and has drawn its fault, so a rejected request never reaches the stand-in model.
    """
    settings = simulator.settings
    if settings.models is not None and request.model not in settings.models:
        raise ApiError(
            404,
            f"The model '{request.model}' does not exist; the simulator accepts: "
            f"{', '.join(settings.models)}",
            outcome="model_not_found",
            param="model",
            code="model_not_found",
        )
    rejection = simulator.limiter.acquire(token_cost)
    if rejection is not None:
        raise ApiError(
            429,
            rejection.message,
            outcome=rejection.outcome,
            code="rate_limit_exceeded",
            error_type=rejection.kind,
            headers=rejection.headers(),
        )
    return Admission(token_cost=token_cost, fault=simulator.faults.draw())


def answer(request: ChatRequest, fault: Fault | None = None) -> dict[str, Any]:
    """Run the stand-in model and build a chat.completion object.

    Token counts are estimates (see `standin.estimate_prompt_tokens`). A truncated,
    malformed_json or schema_violation fault changes the content, and the usage counts the
    changed content (see `faults.render_content`). When the request sets
    max_completion_tokens or max_tokens below the estimated output, the content is cut to
    4 characters per allowed token and finish_reason is "length", as a real provider does.
    Raises ApiError (400) when the prompt does not follow the contract the stand-in reads.
    """
    messages = [message.model_dump() for message in request.messages]
    response_format = request.response_format.model_dump() if request.response_format else None
    try:
        output = standin.generate_output(messages, response_format)
    except standin.PromptError as exc:
        raise ApiError(400, str(exc), outcome="invalid_prompt", param="messages") from exc

    content, finish_reason = render_content(output, fault)
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


async def _complete(request: Request, simulator: Simulator) -> JSONResponse:
    record = RequestRecord(time=time.time())
    started_s = time.monotonic()
    raw_body = await request.body()
    try:
        response = await _respond(request, raw_body, simulator, record)
    except ApiError as error:
        record.model = record.model or _model_name(raw_body)
        record.status = error.status
        record.outcome = error.outcome
        if "retry-after-ms" in error.headers:
            record.retry_after_ms = int(error.headers["retry-after-ms"])
        # Rate limiting is the expected result of a load test, so it is not a warning.
        level = logging.DEBUG if error.status == 429 else logging.WARNING
        logger.log(
            level,
            "rejected chat completion request for model %s with status %s: %s",
            record.model,
            error.status,
            error.message,
        )
        response = error.response()

    response.headers.update(simulator.limiter.headers())
    record.latency_ms = round((time.monotonic() - started_s) * 1000, 3)
    simulator.log.record(record)
    return response


async def _respond(
    request: Request, raw_body: bytes, simulator: Simulator, record: RequestRecord
) -> JSONResponse:
    """Parse and admit one request and build its response, filling in its log record.

    Raises ApiError for a request that gets an error response from `parse_chat_request`,
    `admit` or `answer`.
    """
    chat_request = parse_chat_request(raw_body)
    record.model = chat_request.model
    record.admission_token_cost = admission_token_cost(chat_request)
    admission = admit(chat_request, record.admission_token_cost, simulator)
    record.admitted = True
    if admission.fault is not None:
        record.outcome = admission.fault.kind
        logger.debug(
            "injecting %s fault (%s) into a request for model %s",
            admission.fault.kind,
            admission.fault.variant,
            chat_request.model,
        )

    response = _produce(chat_request, admission, simulator, record)
    delay_s = _delay_s(simulator.settings, admission.fault)
    if delay_s > 0:
        record.client_disconnected = not await _hold(request, delay_s)
    return response


def _produce(
    chat_request: ChatRequest, admission: Admission, simulator: Simulator, record: RequestRecord
) -> JSONResponse:
    """Build the response of an admitted request and settle its token cost."""
    fault = admission.fault
    if fault is not None and fault.kind in UNANSWERED_FAULTS:
        simulator.limiter.settle(admission.token_cost, 0)
        return _unanswered_response(fault, record)
    try:
        completion = answer(chat_request, fault)
    except ApiError:
        simulator.limiter.settle(admission.token_cost, 0)
        raise
    usage = completion["usage"]
    record.prompt_tokens = usage["prompt_tokens"]
    record.completion_tokens = usage["completion_tokens"]
    simulator.limiter.settle(
        admission.token_cost, record.prompt_tokens + record.completion_tokens
    )
    return JSONResponse(completion)


def _unanswered_response(fault: Fault, record: RequestRecord) -> JSONResponse:
    if fault.kind == "server_error":
        status = int(fault.variant or "500")
        record.status = status
        message = f"The simulator injected HTTP {status} (server_error fault). Retry the request."
        return JSONResponse(error_body(message, "server_error"), status_code=status)
    message = (
        "The simulator injected an error object into an HTTP 200 response "
        "(error_in_200 fault). Retry the request."
    )
    return JSONResponse(error_body(message, "server_error"))


def _delay_s(settings: SimulatorSettings, fault: Fault | None) -> float:
    delay_s = settings.latency_ms / 1000
    if fault is not None and fault.kind == "slow":
        delay_s += settings.slow_ms / 1000
    elif fault is not None and fault.kind == "stall":
        delay_s += settings.stall_s
    return delay_s


async def _hold(request: Request, delay_s: float) -> bool:
    """Wait `delay_s` seconds; return False as soon as the client has disconnected.

    Stopping early keeps abandoned stalls from piling up and from delaying a shutdown.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + delay_s
    while (remaining_s := deadline - loop.time()) > 0:
        await asyncio.sleep(min(remaining_s, DISCONNECT_POLL_S))
        if await request.is_disconnected():
            return False
    return True


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
    """Create the simulator's FastAPI app with its own settings, limits, faults and log."""
    simulator = Simulator(settings or SimulatorSettings())
    log = simulator.log
    app = FastAPI(title="Sluice provider simulator")
    app.state.simulator = simulator
    app.state.settings = simulator.settings
    app.state.request_log = log

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> JSONResponse:
        return await _complete(request, simulator)

    @app.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        return _model_list(simulator.settings)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/_simulator/requests")
    async def list_requests() -> list[dict[str, Any]]:
        return log.entries()

    @app.delete("/_simulator/requests")
    async def clear_requests() -> dict[str, int]:
        return {"cleared": log.clear()}

    @app.get("/_simulator/stats")
    async def stats() -> dict[str, Any]:
        return simulator.stats()

    @app.delete("/_simulator/stats")
    async def reset_stats() -> dict[str, int]:
        return {"cleared": log.reset_totals()}

    return app


def serve(host: str, port: int, settings: SimulatorSettings | None = None) -> None:
    """Run the simulator with uvicorn until the process is stopped."""
    logger.info("starting provider simulator; its base URL is http://%s:%s/v1", host, port)
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")
