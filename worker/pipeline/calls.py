"""One LLM call of an attempt: pick a model of the step, respect every limit, call it.

The step's models are tried in order (the route model, then its fallbacks); a model is
skipped when its provider's circuit is open or the prompt does not fit its context. Each
model gets `call_attempts` tries in place on transient failures (tenacity), sleeping only
short waits; the rate limiter decides when a request may go out.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from tenacity import RetryCallState, Retrying, retry_if_exception

from models import LLMCall
from worker import costs, metrics, tokens
from worker.breaker import CircuitBreaker
from worker.config import Target
from worker.db import session_scope
from worker.errors import ProviderError
from worker.pipeline import store
from worker.pipeline.context import Context, Deferred, InputTooLong, Stopped
from worker.pipeline.decide import Backoff, StepState, retry_delay_s
from worker.pipeline.guards import check_before_call
from worker.providers import Completion, ProviderClient
from worker.ratelimit import RateLimiter, RequestTooLargeError
from worker.settings import Settings

logger = logging.getLogger(__name__)

# In-place backoff starts small: the slot stays held, so only short waits are worth it.
IN_PLACE_BASE_DELAY_S = 0.5
# How often a call waiting for an in-flight slot looks again.
SLOT_RETRY_S = 0.05


@dataclass
class Services:
    """The outside world of the pipeline; tests swap in fakes or real local servers."""

    client: ProviderClient
    limiter: RateLimiter | None = None
    breaker: CircuitBreaker | None = None
    sleep: Callable[[float], None] = time.sleep
    jitter: Callable[[], float] = field(default=random.random)


@dataclass(frozen=True)
class Call:
    """A request that returned output, with what was sent."""

    completion: Completion
    target: Target
    messages: list[dict[str, str]]
    max_tokens: int
    prompt_tokens: int


class Caller:
    def __init__(self, services: Services, settings: Settings) -> None:
        self.services = services
        self.settings = settings

    def call(self, context: Context, state: StepState, messages: list[dict[str, str]],
             purpose: str) -> Call:
        """Return the first response a model of the step gives, or raise the last failure."""
        last_error: ProviderError | None = None
        fitted = False
        for index, target in enumerate(context.route[state.step]):
            prompt_tokens = tokens.count_prompt_tokens(messages, _tokenizer(target))
            max_tokens = _output_budget(target, prompt_tokens, state.enlarged)
            if prompt_tokens + max_tokens > target.model.context_window:
                context.note("skipped", state.step, target, "input_too_long",
                             prompt_tokens=prompt_tokens)
                continue
            fitted = True
            try:
                completion = self._with_retries(context, target, messages, purpose, state.step,
                                                prompt_tokens, max_tokens)
            except ProviderError as exc:
                event = "skipped" if exc.kind == "circuit_open" else "provider_failed"
                context.note(event, state.step, target, exc.kind)
                last_error = exc
                continue
            if index > 0:
                context.note("fallback_used", state.step, target)
            return Call(completion, target, messages, max_tokens, prompt_tokens)
        if last_error is None and not fitted:
            raise InputTooLong()
        assert last_error is not None
        raise last_error

    def _breaker_allows(self, target: Target) -> bool:
        breaker = self.services.breaker
        return breaker is None or breaker.allows(target.model.provider, target.provider.breaker)

    def _with_retries(self, context: Context, target: Target, messages: list[dict[str, str]],
                      purpose: str, step: int, prompt_tokens: int, max_tokens: int) -> Completion:
        retrying = Retrying(
            retry=retry_if_exception(_worth_retrying_in_place),
            stop=self._stop, wait=self._wait, sleep=self.services.sleep, reraise=True,
        )
        for attempt in retrying:
            with attempt:
                return self._request(context, target, messages, purpose, step, prompt_tokens,
                                     max_tokens)
        raise AssertionError("tenacity ended without a result or an exception")

    def _stop(self, state: RetryCallState) -> bool:
        if state.attempt_number >= self.settings.call_attempts:
            return True
        error = state.outcome.exception() if state.outcome else None
        retry_after = getattr(error, "retry_after_s", None) or 0.0
        return bool(retry_after > self.settings.in_place_max_wait_s)

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        backoff = Backoff(IN_PLACE_BASE_DELAY_S, max(self.settings.in_place_max_wait_s, 0.01))
        return retry_delay_s(state.attempt_number, getattr(error, "retry_after_s", None),
                             backoff, self.services.jitter())

    def _request(self, context: Context, target: Target, messages: list[dict[str, str]],
                 purpose: str, step: int, prompt_tokens: int, max_tokens: int) -> Completion:
        check_before_call(context, target, prompt_tokens, max_tokens, self.settings)
        if not self._breaker_allows(target):
            raise _circuit_open(target)
        reserved = prompt_tokens + max_tokens
        slot = self._take_slot(target)
        try:
            self._acquire(target, reserved)
            context.requests_made += 1
            completion = self._send(context, target, messages, max_tokens)
        except ProviderError as exc:
            metrics.LLM_REQUESTS.labels(target.model.provider, target.model.name, exc.kind).inc()
            self._after_failure(target, reserved, exc)
            store_failed_call(context, step, target, messages, purpose, max_tokens, exc)
            raise
        finally:
            self._release_slot(target, slot)
        record_success_metrics(target, completion)
        self._after_success(target, reserved, completion)
        return completion

    def _send(self, context: Context, target: Target, messages: list[dict[str, str]],
              max_tokens: int) -> Completion:
        return self.services.client.complete(
            target.model.provider, target.provider, target.model, messages,
            context.workflow.response_format(target.provider.structured_output),
            max_tokens=max_tokens, temperature=context.workflow.config.temperature,
        )

    def _take_slot(self, target: Target) -> str | None:
        """Wait in place for an in-flight slot while waits are short; defer otherwise."""
        limit = target.provider.limits.max_concurrency
        limiter = self.services.limiter
        if limit is None or limiter is None:
            return None
        slot = uuid.uuid4().hex
        # A slot outlives the request's timeout only if its worker died holding it.
        ttl_s = target.provider.timeout_s + 30
        waited_s = 0.0
        while not limiter.take_slot(target.model.provider, limit, slot, ttl_s):
            if waited_s >= self.settings.in_place_max_wait_s:
                raise Deferred("concurrency_limit", SLOT_RETRY_S * 10)
            self.services.sleep(SLOT_RETRY_S)
            waited_s += SLOT_RETRY_S
        return slot

    def _release_slot(self, target: Target, slot: str | None) -> None:
        if slot is not None and self.services.limiter is not None:
            self.services.limiter.release_slot(target.model.provider, slot)

    def _acquire(self, target: Target, reserved: int) -> None:
        """Wait in place for the limiter while waits are short; defer the job otherwise."""
        limiter = self.services.limiter
        if limiter is None:
            return
        waited_s = 0.0
        while True:
            try:
                grant = limiter.acquire(target.model.provider, target.provider.limits, reserved)
            except RequestTooLargeError as exc:
                raise Stopped("request_too_large", str(exc)) from exc
            if grant.granted:
                metrics.RATELIMIT_WAIT.labels(target.model.provider).observe(waited_s)
                return
            if waited_s + grant.wait_s > self.settings.in_place_max_wait_s:
                raise Deferred(f"rate_limited_{grant.binding}", grant.wait_s)
            self.services.sleep(grant.wait_s)
            waited_s += grant.wait_s

    def _after_failure(self, target: Target, reserved: int, error: ProviderError) -> None:
        provider = target.model.provider
        if self.services.limiter is not None:
            # A rejected or failed request used no tokens at the provider.
            self.services.limiter.reconcile(provider, target.provider.limits, reserved, 0)
            if error.kind == "rate_limited":
                self.services.limiter.pause(provider, error.retry_after_s or 1.0)
        if self.services.breaker is not None and error.transient and error.kind != "rate_limited":
            self.services.breaker.record_failure(provider, target.provider.breaker)

    def _after_success(self, target: Target, reserved: int, completion: Completion) -> None:
        provider = target.model.provider
        if self.services.limiter is not None:
            used = completion.prompt_tokens + completion.completion_tokens
            self.services.limiter.reconcile(provider, target.provider.limits, reserved, used)
            self.services.limiter.correct(provider, completion.headers)
        if self.services.breaker is not None:
            self.services.breaker.record_success(provider)


def record_success_metrics(target: Target, completion: Completion) -> None:
    provider, model = target.model.provider, target.model.name
    metrics.LLM_REQUESTS.labels(provider, model, "ok").inc()
    metrics.LLM_LATENCY.labels(provider, model).observe(completion.latency_ms / 1000)
    tokens_by_kind = {"prompt": completion.prompt_tokens,
                      "completion": completion.completion_tokens,
                      "cached": completion.cached_tokens}
    for kind, count in tokens_by_kind.items():
        metrics.LLM_TOKENS.labels(provider, model, kind).inc(count)


def _worth_retrying_in_place(error: BaseException) -> bool:
    """Transient failures, except an open circuit, which lasts longer than any short wait."""
    return isinstance(error, ProviderError) and error.transient and error.kind != "circuit_open"


def _tokenizer(target: Target) -> str | None:
    return target.model.tokenizer or tokens.tokenizer_for_model(target.model.name)


def _output_budget(target: Target, prompt_tokens: int, enlarged: bool) -> int:
    """The model's configured output budget, doubled on the retry after a cut-off answer."""
    budget = target.model.max_output_tokens
    if not enlarged:
        return budget
    return max(budget, min(2 * budget, target.model.context_window - prompt_tokens))


def _circuit_open(target: Target) -> ProviderError:
    return ProviderError(
        f"circuit for provider {target.model.provider} is open", kind="circuit_open",
        transient=True, provider=target.model.provider, model=target.model.name,
        retry_after_s=target.provider.breaker.cooldown_s,
    )


def new_call_row(context: Context, step: int, target: Target, messages: list[dict[str, str]],
                 purpose: str, max_tokens: int, **values: Any) -> LLMCall:
    return LLMCall(
        attempt_id=context.claim.attempt_id, job_id=context.job_id, tenant_id=context.tenant_id,
        workflow=context.workflow.name, purpose=purpose, route_step=step,
        provider=target.model.provider, model=target.model.name, messages=messages,
        max_tokens=max_tokens, price_date=target.model.price_date, **values,
    )


def store_failed_call(context: Context, step: int, target: Target,
                      messages: list[dict[str, str]], purpose: str, max_tokens: int,
                      error: ProviderError) -> None:
    # Providers report no usage for a failed request, so there is nothing to price.
    call = new_call_row(context, step, target, messages, purpose, max_tokens,
                        http_status=error.status, error_kind=error.kind, cost_usd=Decimal(0))
    with session_scope() as session:
        store.add_llm_call(session, call)
    logger.info("llm call failed: %s", error, extra={
        "action": "llm.call_failed", "provider": target.model.provider,
        "model": target.model.name, "error_kind": error.kind, "http_status": error.status,
        **context.log})


def price(call: Call) -> Decimal:
    completion = call.completion
    return costs.price_call(call.target.model, completion.prompt_tokens,
                            completion.completion_tokens, completion.cached_tokens)
