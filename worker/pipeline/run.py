"""Run one attempt of a job: load, build prompt, call, validate, then record or review."""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from pydantic import BaseModel

from models import Job, JobState, LLMCall, ReviewItem
from worker import costs
from worker.config import ModelConfig, ProviderConfig, SluiceConfig, get_config
from worker.db import session_scope
from worker.errors import ProviderError, SluiceError
from worker.pipeline import decide, store
from worker.providers import Completion, OpenAICompatibleClient, ProviderClient
from worker.settings import Settings, get_settings
from worker.workflows import Workflow, get_workflow
from worker.workflows.validation import ValidationIssue, ValidationResult

logger = logging.getLogger(__name__)

_default_client: ProviderClient | None = None


def default_client() -> ProviderClient:
    global _default_client
    if _default_client is None:
        _default_client = OpenAICompatibleClient()
    return _default_client


@dataclass(frozen=True)
class Outcome:
    """What the task layer needs to know after an attempt."""

    state: JobState | None
    retry_in_s: float | None = None


@dataclass
class Context:
    """Everything one attempt works with; built once by `load`."""

    claim: store.Claim
    job_id: uuid.UUID
    tenant_id: str
    workflow: Workflow
    job_input: BaseModel
    route: list[tuple[str, ModelConfig, ProviderConfig]]
    log: dict[str, Any] = field(default_factory=dict)


@dataclass
class Best:
    """The most useful failed output so far, kept for the review item."""

    raw_output: str | None = None
    issues: list[ValidationIssue] = field(default_factory=list)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


def run_job(
    job_id: uuid.UUID,
    client: ProviderClient | None = None,
    settings: Settings | None = None,
    config: SluiceConfig | None = None,
) -> Outcome:
    """Claim the job and run one attempt; return the state it left the job in."""
    settings = settings or get_settings()
    config = config or get_config()
    client = client or default_client()

    claim = _claim(job_id, settings)
    if not isinstance(claim, store.Claim):
        return claim
    context = load(claim, config)
    if context is None:
        return Outcome(JobState.FAILED)
    return execute(context, client, settings)


def _claim(job_id: uuid.UUID, settings: Settings) -> store.Claim | Outcome:
    with session_scope() as session:
        claim = store.claim(
            session, job_id, worker_name(), settings.job_lease_s, settings.max_attempts
        )
    if isinstance(claim, store.Claim):
        logger.info("attempt started", extra={"action": "job.attempt_started",
                                              "job_id": str(job_id), "attempt": claim.attempt})
        return claim
    if claim.attempts_exhausted:
        with session_scope() as session:
            store.settle_exhausted(session, job_id, "attempts_exhausted")
        logger.warning("job sent to review after its attempts ran out",
                       extra={"action": "job.attempts_exhausted", "job_id": str(job_id)})
        return Outcome(JobState.NEEDS_REVIEW)
    if claim.wait_s > 0:
        return Outcome(claim.state, retry_in_s=claim.wait_s)
    logger.info("task skipped", extra={"action": "job.skipped", "job_id": str(job_id),
                                       "state": str(claim.state)})
    return Outcome(claim.state)


def load(claim: store.Claim, config: SluiceConfig) -> Context | None:
    """Read the job and resolve its workflow; a job that cannot run is failed here."""
    with session_scope() as session:
        job = session.get(Job, claim.job_id)
        assert job is not None
        tenant_id, workflow_name, raw_input = job.tenant_id, job.workflow, job.input
        try:
            workflow = get_workflow(config, workflow_name)
            job_input = workflow.validate_input(raw_input)
        except SluiceError as exc:
            store.finish(session, claim, JobState.FAILED, "failed", "not_runnable", str(exc))
            logger.warning("job cannot run: %s", exc, extra={
                "action": "job.failed", "job_id": str(claim.job_id), "reason": "not_runnable"})
            return None
    return Context(
        claim=claim, job_id=claim.job_id, tenant_id=tenant_id, workflow=workflow,
        job_input=job_input, route=config.route_models(workflow_name),
        log={"job_id": str(claim.job_id), "tenant": tenant_id, "workflow": workflow_name,
             "attempt": claim.attempt},
    )


def execute(context: Context, client: ProviderClient, settings: Settings) -> Outcome:
    """Walk the route until a decision settles the job or schedules another attempt."""
    state = decide.StepState(step=0, route_length=len(context.route), repaired=False)
    messages = context.workflow.build_messages(context.job_input)
    purpose = "first"
    best = Best()

    while True:
        decision, result, completion = _call_and_decide(
            context, client, settings, state, messages, purpose
        )
        if completion is not None and result is not None and not result.ok:
            best = Best(completion.content, result.issues)

        if isinstance(decision, decide.Accept):
            assert result is not None and result.output is not None
            return _record(context, result.output)
        if isinstance(decision, decide.Repair):
            assert completion is not None and result is not None
            messages = context.workflow.repair_messages(
                messages, completion.content or "", result.issues)
            state = decide.StepState(state.step, state.route_length, repaired=True)
            purpose = "repair"
        elif isinstance(decision, decide.Escalate):
            logger.info("escalating to the next model of the route", extra={
                "action": "job.escalated", "reason": decision.reason, **context.log})
            state = decide.StepState(decision.next_step, state.route_length, repaired=False)
            messages = context.workflow.build_messages(context.job_input)
            purpose = "escalation"
        elif isinstance(decision, decide.Review):
            return _review(context, decision.reason, best)
        else:
            return _requeue(context, decision)


def _call_and_decide(
    context: Context, client: ProviderClient, settings: Settings, state: decide.StepState,
    messages: list[dict[str, str]], purpose: str,
) -> tuple[decide.Decision, ValidationResult | None, Completion | None]:
    _, model, provider = context.route[state.step]
    try:
        completion = client.complete(
            model.provider, provider, model, messages,
            context.workflow.response_format(provider.structured_output),
            max_tokens=model.max_output_tokens,
            temperature=context.workflow.config.temperature,
        )
    except ProviderError as exc:
        _store_failed_call(context, state.step, model, messages, purpose, exc)
        decision = decide.after_provider_error(
            state, transient=exc.transient, attempt=context.claim.attempt,
            max_attempts=settings.max_attempts, retry_after_s=exc.retry_after_s,
            base_delay_s=settings.retry_base_delay_s, max_delay_s=settings.retry_max_delay_s,
        )
        return decision, None, None

    result = context.workflow.validate_output(completion.content)
    _store_call(context, state.step, model, messages, purpose, completion, result)
    return decide.after_output(state, completion.finish_reason, result), result, completion


def _store_call(
    context: Context, step: int, model: ModelConfig, messages: list[dict[str, str]],
    purpose: str, completion: Completion, result: ValidationResult,
) -> None:
    cost = costs.price_call(model, completion.prompt_tokens, completion.completion_tokens,
                            completion.cached_tokens)
    call = LLMCall(
        attempt_id=context.claim.attempt_id, job_id=context.job_id, purpose=purpose,
        route_step=step, provider=model.provider, model=model.name, messages=messages,
        raw_output=completion.content, finish_reason=completion.finish_reason,
        prompt_tokens=completion.prompt_tokens, completion_tokens=completion.completion_tokens,
        cached_tokens=completion.cached_tokens, latency_ms=completion.latency_ms,
        http_status=completion.http_status,
        validation_errors=[issue.as_dict() for issue in result.issues] or None,
        cost_usd=cost,
    )
    with session_scope() as session:
        store.add_llm_call(session, call)
    logger.info("llm call finished", extra={
        "action": "llm.call", "provider": model.provider, "model": model.name,
        "purpose": purpose, "prompt_tokens": completion.prompt_tokens,
        "completion_tokens": completion.completion_tokens, "latency_ms": completion.latency_ms,
        "cost_usd": str(cost), "valid": result.ok, **context.log})


def _store_failed_call(
    context: Context, step: int, model: ModelConfig, messages: list[dict[str, str]],
    purpose: str, error: ProviderError,
) -> None:
    call = LLMCall(
        attempt_id=context.claim.attempt_id, job_id=context.job_id, purpose=purpose,
        route_step=step, provider=model.provider, model=model.name, messages=messages,
        http_status=error.status, error_kind=error.kind,
        # Providers report no usage for a failed request, so there is nothing to price.
        cost_usd=Decimal(0),
    )
    with session_scope() as session:
        store.add_llm_call(session, call)
    logger.info("llm call failed: %s", error, extra={
        "action": "llm.call_failed", "provider": model.provider, "model": model.name,
        "error_kind": error.kind, "http_status": error.status, **context.log})


def _record(context: Context, output: BaseModel) -> Outcome:
    with session_scope() as session:
        if not store.finish(session, context.claim, JobState.SUCCEEDED, "succeeded", None):
            return _lost_lease(context)
        context.workflow.write_record(session, context.job_id, output)
    logger.info("job succeeded", extra={"action": "job.succeeded", **context.log})
    return Outcome(JobState.SUCCEEDED)


def _review(context: Context, reason: str, best: Best) -> Outcome:
    with session_scope() as session:
        owned = store.finish(session, context.claim, JobState.NEEDS_REVIEW, "needs_review",
                             reason)
        if not owned:
            return _lost_lease(context)
        session.add(ReviewItem(
            job_id=context.job_id, reason=reason, raw_output=best.raw_output,
            errors=[issue.as_dict() for issue in best.issues],
        ))
    logger.warning("job sent to review", extra={
        "action": "job.needs_review", "reason": reason, **context.log})
    return Outcome(JobState.NEEDS_REVIEW)


def _requeue(context: Context, decision: decide.RetryLater) -> Outcome:
    with session_scope() as session:
        owned = store.requeue(session, context.claim, decision.reason, decision.delay_s,
                              "transient provider failure")
    if not owned:
        return _lost_lease(context)
    logger.info("attempt will be retried", extra={
        "action": "job.retry_scheduled", "delay_s": decision.delay_s, **context.log})
    return Outcome(JobState.QUEUED, retry_in_s=decision.delay_s)


def _lost_lease(context: Context) -> Outcome:
    logger.warning("job was taken over by another worker; this attempt's result is dropped",
                   extra={"action": "job.lease_lost", **context.log})
    return Outcome(None)
