"""Chat completions over the `openai` SDK against any OpenAI-compatible base URL.

The SDK's own retries are off (`max_retries=0`): it would otherwise sleep on `Retry-After`
inside the call and retry on its own, multiplying whatever retries the pipeline makes.
Every SDK error is translated here into `ProviderError` with a kind and a transient flag.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import openai

from worker.config import ModelConfig, ProviderConfig
from worker.errors import ProviderError


@dataclass(frozen=True)
class Completion:
    """Result of one successful provider request, with its usage and timing."""

    content: str | None
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    reasoning_tokens: int
    latency_ms: int
    http_status: int
    headers: dict[str, str] = field(default_factory=dict)


class ProviderClient(Protocol):
    def complete(
        self,
        provider_key: str,
        provider: ProviderConfig,
        model: ModelConfig,
        messages: list[dict[str, str]],
        response_format: dict[str, Any],
        max_tokens: int,
        temperature: float,
    ) -> Completion: ...


class OpenAICompatibleClient:
    """One `openai.OpenAI` client per provider and process, shared by threads."""

    def __init__(self) -> None:
        self._clients: dict[tuple[str, str], openai.OpenAI] = {}
        self._lock = threading.Lock()

    def _client(self, provider_key: str, provider: ProviderConfig) -> openai.OpenAI:
        key = (provider_key, provider.base_url)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = openai.OpenAI(
                    base_url=provider.base_url,
                    api_key=provider.api_key() or "missing-key",
                    max_retries=0,
                    timeout=provider.timeout_s,
                )
                self._clients[key] = client
            return client

    def complete(
        self,
        provider_key: str,
        provider: ProviderConfig,
        model: ModelConfig,
        messages: list[dict[str, str]],
        response_format: dict[str, Any],
        max_tokens: int,
        temperature: float,
    ) -> Completion:
        client = self._client(provider_key, provider)
        started = time.perf_counter()
        try:
            # The SDK types messages and formats as TypedDicts; plain dicts are what it sends.
            raw = client.chat.completions.with_raw_response.create(  # type: ignore[call-overload]
                model=model.name,
                messages=messages,
                response_format=response_format,
                max_tokens=max_tokens,
                temperature=temperature,
            )
            completion = raw.parse()
        except openai.APIError as exc:
            raise translate_error(exc, provider_key, model.name) from exc
        latency_ms = int((time.perf_counter() - started) * 1000)
        return _to_completion(completion, raw.http_response, latency_ms, provider_key, model.name)


def _to_completion(
    completion: Any, response: Any, latency_ms: int, provider_key: str, model: str
) -> Completion:
    choices = getattr(completion, "choices", None)
    if not choices:
        # Some servers return HTTP 200 with an error object instead of choices.
        raise ProviderError(
            f"provider {provider_key} returned HTTP 200 without choices for model {model}",
            kind="error_in_body", transient=True, provider=provider_key, model=model,
            status=response.status_code,
        )
    usage = completion.usage
    prompt_details = getattr(usage, "prompt_tokens_details", None)
    completion_details = getattr(usage, "completion_tokens_details", None)
    return Completion(
        content=choices[0].message.content,
        finish_reason=choices[0].finish_reason,
        prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
        completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
        cached_tokens=getattr(prompt_details, "cached_tokens", 0) or 0,
        reasoning_tokens=getattr(completion_details, "reasoning_tokens", 0) or 0,
        latency_ms=latency_ms,
        http_status=response.status_code,
        headers={k.lower(): v for k, v in response.headers.items() if k.lower().startswith("x-")},
    )


def translate_error(exc: openai.APIError, provider_key: str, model: str) -> ProviderError:
    """Map an SDK error to a ProviderError; transient ones may succeed when tried again."""
    common: dict[str, Any] = {"provider": provider_key, "model": model}
    if isinstance(exc, openai.APITimeoutError):
        return ProviderError(f"request to {provider_key} timed out", kind="timeout",
                             transient=True, **common)
    if isinstance(exc, openai.APIConnectionError):
        return ProviderError(f"cannot connect to {provider_key}: {exc}", kind="connection",
                             transient=True, **common)
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        retry_after = _retry_after_s(exc.response)
        if status == 429:
            return ProviderError(f"{provider_key} rate limit reached (HTTP 429)",
                                 kind="rate_limited", transient=True, status=status,
                                 retry_after_s=retry_after, **common)
        if status >= 500 or status == 408:
            return ProviderError(f"{provider_key} server error HTTP {status}",
                                 kind="server_error", transient=True, status=status,
                                 retry_after_s=retry_after, **common)
        return ProviderError(f"{provider_key} rejected the request with HTTP {status}: "
                             f"{exc.message}", kind="rejected", transient=False,
                             status=status, **common)
    # APIResponseValidationError and other decode failures: a garbled body.
    return ProviderError(f"{provider_key} returned a body that is not a chat completion: {exc}",
                         kind="malformed_response", transient=True, **common)


def _retry_after_s(response: Any) -> float | None:
    """Read `retry-after-ms` or `retry-after` (seconds) from an error response."""
    value = response.headers.get("retry-after-ms")
    if value is not None:
        try:
            return float(value) / 1000
        except ValueError:
            return None
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None
