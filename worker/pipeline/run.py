"""Run one attempt of a job: claim, load, then walk the route until the job settles."""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid

from pydantic import BaseModel

from models import Job, JobState, ReviewItem
from models.base import utcnow
from worker import metrics
from worker.breaker import CircuitBreaker
from worker.callbacks.outbox import write_callback
from worker.config import SluiceConfig, Target, get_config
from worker.db import session_scope
from worker.errors import ProviderError, SluiceError
from worker.pipeline import decide, store
from worker.pipeline.calls import Call, Caller, Services, new_call_row, price
from worker.pipeline.chunked import extract_in_chunks
from worker.pipeline.context import Best, Context, Deferred, InputTooLong, Outcome, Stopped
from worker.pipeline.results import save_record
from worker.providers import OpenAICompatibleClient
from worker.ratelimit import RateLimiter
from worker.redis_client import get_redis
from worker.settings import Settings, get_settings
from worker.workflows import get_workflow
from worker.workflows.validation import ValidationIssue, ValidationResult

logger = logging.getLogger(__name__)

_default_services: Services | None = None


def default_services() -> Services:
    """Return the real provider client, limiter and breaker, built once per process."""
    global _default_services
    if _default_services is None:
        client = get_redis()
        _default_services = Services(
            client=OpenAICompatibleClient(), limiter=RateLimiter(client),
            breaker=CircuitBreaker(client),
        )
    return _default_services


def reset_services() -> None:
    global _default_services
    _default_services = None


def without_nul(text: str | None) -> str | None:
    """PostgreSQL text cannot hold NUL; a model's output can. Keep the rest readable."""
    return None if text is None else text.replace("\x00", "\ufffd")


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


def run_job(
    job_id: uuid.UUID,
    services: Services | None = None,
    settings: Settings | None = None,
    config: SluiceConfig | None = None,
) -> Outcome:
    """Claim the job and run one attempt; return the state it left the job in."""
    settings = settings or get_settings()
    config = config or get_config()
    services = services or default_services()

    claim = _claim(job_id, settings)
    if not isinstance(claim, store.Claim):
        return claim
    context = load(claim, config)
    if context is None:
        return Outcome(JobState.FAILED)
    return Attempt(context, Caller(services, settings), services, settings).run()


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
        try:
            workflow = get_workflow(config, job.workflow)
            job_input = workflow.validate_input(job.input)
        except SluiceError as exc:
            if store.finish(session, claim, JobState.FAILED, "failed", "not_runnable",
                            str(exc)):
                write_callback(session, claim.job_id, JobState.FAILED)
            logger.warning("job cannot run: %s", exc, extra={
                "action": "job.failed", "job_id": str(claim.job_id), "reason": "not_runnable"})
            return None
        requests_made, cost_usd = store.spent_since(
            session, claim.job_id, store.budget_start(session, claim.job_id))
        return Context(
            claim=claim, job_id=claim.job_id, tenant_id=job.tenant_id, workflow=workflow,
            job_input=job_input, route=route_for(config, job),
            requests_made=requests_made, cost_usd=cost_usd,
            failed_attempts=job.attempt_count - job.deferrals, created_at=job.created_at,
            log={"job_id": str(claim.job_id), "tenant": job.tenant_id,
                 "workflow": job.workflow, "attempt": claim.attempt},
        )


# Later layers mean the output got further: a rule violation is parsed JSON that fits the
# schema, so a reviewer starts from more of it than from a schema violation or prose.
_LAYER_RANK = {"rule_violation": 0, "schema_violation": 1, "invalid_json": 2}


def _more_useful(result: ValidationResult, best_reason: str | None, best: Best) -> bool:
    """Tell whether a failed output gives a reviewer more to start from than the best so far."""
    if best_reason is None:
        return True
    new_rank = (_LAYER_RANK.get(result.reason or "", 3), len(result.issues))
    old_rank = (_LAYER_RANK.get(best_reason, 3), len(best.issues))
    return new_rank <= old_rank


def route_for(config: SluiceConfig, job: Job) -> list[list[Target]]:
    """Return the workflow's route, or only the model a reviewer chose for a retry."""
    override = job.route_override
    if override is None:
        return config.route_steps(job.workflow)
    if override not in config.models:
        logger.warning("route override %r is no longer configured; using the route", override,
                       extra={"action": "job.override_ignored", "job_id": str(job.id)})
        return config.route_steps(job.workflow)
    return [[config.target(override)]]


class Attempt:
    """The route walk of one attempt; each decision moves it on or settles the job."""

    def __init__(self, context: Context, caller: Caller, services: Services,
                 settings: Settings) -> None:
        self.context = context
        self.caller = caller
        self.services = services
        self.settings = settings
        self.best = Best()
        self.best_reason: str | None = None
        self.accepted: BaseModel | None = None

    def run(self) -> Outcome:
        context = self.context
        state = decide.StepState(step=0, route_length=len(context.route))
        messages = context.workflow.build_messages(context.job_input)
        purpose = "first"
        while True:
            try:
                decision, call = self._step(state, messages, purpose)
            except Deferred as wait:
                # NOTE: the next attempt walks the route from the start, so a deferral
                # after a repair or a cut-off answer pays for the first call again.
                return self._requeue(wait.reason, wait.delay_s, deferred=True)
            except Stopped as stop:
                context.note("stopped", state.step, None, stop.reason)
                return self.review(stop.reason, str(stop))

            if isinstance(decision, decide.Accept):
                assert call is not None
                return self.record(call.target)
            if isinstance(decision, decide.Review):
                if (decision.reason == decide.INPUT_TOO_LONG
                        and context.workflow.supports_chunks):
                    return self._chunked()
                return self.review(decision.reason)
            if isinstance(decision, decide.RetryLater):
                return self._requeue(decision.reason, decision.delay_s, deferred=False)

            messages, purpose = self._next_messages(state, decision, messages, call)
            state = state.after(decision)

    def _chunked(self) -> Outcome:
        try:
            return extract_in_chunks(self)
        except Deferred as wait:
            return self._requeue(wait.reason, wait.delay_s, deferred=True)
        except Stopped as stop:
            return self.review(stop.reason, str(stop))
        except ProviderError as exc:
            return self.review(decide.PROVIDER_EXHAUSTED, str(exc))
        except InputTooLong:
            return self.review(decide.INPUT_TOO_LONG, "a chunk does not fit the model")

    def keep_best(self, raw_output: str | None, issues: list[ValidationIssue]) -> None:
        self.best = Best(raw_output, issues)

    def _step(self, state: decide.StepState, messages: list[dict[str, str]],
              purpose: str) -> tuple[decide.Decision, Call | None]:
        """Make one call and decide what follows it."""
        try:
            call = self.caller.call(self.context, state, messages, purpose)
        except InputTooLong:
            self.context.note("input_too_long", state.step, None)
            return decide.after_input_too_long(state), None
        except ProviderError as exc:
            return decide.after_provider_error(
                state, transient=exc.transient, failed_attempts=self.context.failed_attempts,
                max_attempts=self.settings.max_attempts, retry_after_s=exc.retry_after_s,
                backoff=decide.Backoff(self.settings.retry_base_delay_s,
                                       self.settings.retry_max_delay_s),
                jitter=self.services.jitter(),
            ), None
        result = self.context.workflow.validate_output(call.completion.content)
        self.store_call(call, state.step, purpose, result.issues)
        if result.ok:
            self.accepted = result.output
        elif _more_useful(result, self.best_reason, self.best):
            self.best = Best(call.completion.content, result.issues)
            self.best_reason = result.reason
        return decide.after_output(state, call.completion.finish_reason, result), call

    def _next_messages(self, state: decide.StepState, decision: decide.Decision,
                       messages: list[dict[str, str]],
                       call: Call | None) -> tuple[list[dict[str, str]], str]:
        context = self.context
        if isinstance(decision, decide.Repair):
            assert call is not None
            return context.workflow.repair_messages(
                messages, call.completion.content or "", self.best.issues), "repair"
        if isinstance(decision, decide.RetryLarger):
            context.note("output_budget_raised", state.step, call.target if call else None,
                         "truncated")
            return messages, "larger_output"
        assert isinstance(decision, decide.Escalate)
        context.note("escalated", state.step, call.target if call else None, decision.reason)
        logger.info("escalating to the next model of the route", extra={
            "action": "job.escalated", "reason": decision.reason, **context.log})
        return context.workflow.build_messages(context.job_input), "escalation"

    def store_call(self, call: Call, step: int, purpose: str,
                   issues: list[ValidationIssue]) -> None:
        completion = call.completion
        cost = price(call)
        row = new_call_row(
            self.context, step, call.target, call.messages, purpose, call.max_tokens,
            raw_output=without_nul(completion.content), finish_reason=completion.finish_reason,
            prompt_tokens=completion.prompt_tokens,
            completion_tokens=completion.completion_tokens,
            cached_tokens=completion.cached_tokens, reasoning_tokens=completion.reasoning_tokens,
            latency_ms=completion.latency_ms, http_status=completion.http_status,
            validation_errors=[issue.as_dict() for issue in issues] or None,
            cost_usd=cost,
        )
        with session_scope() as session:
            store.add_llm_call(session, row)
        self.context.cost_usd += cost
        metrics.LLM_COST.labels(call.target.model.provider, call.target.model.name,
                                self.context.workflow.name).inc(float(cost))
        logger.info("llm call finished", extra={
            "action": "llm.call", "provider": call.target.model.provider,
            "model": call.target.model.name, "purpose": purpose,
            "prompt_tokens": completion.prompt_tokens,
            "completion_tokens": completion.completion_tokens,
            "latency_ms": completion.latency_ms, "cost_usd": str(cost), "valid": not issues,
            **self.context.log})

    def record(self, target: Target) -> Outcome:
        output = self.accepted
        assert output is not None
        context = self.context
        context.note("accepted", -1, target)
        with session_scope() as session:
            if not store.finish(session, context.claim, JobState.SUCCEEDED, "succeeded", None,
                                route_log=context.route_log):
                return self._lost_lease()
            save_record(session, context.workflow, context.job_id, output)
        logger.info("job succeeded", extra={"action": "job.succeeded", **context.log})
        return self._finished(JobState.SUCCEEDED)

    def review(self, reason: str, detail: str | None = None) -> Outcome:
        context = self.context
        with session_scope() as session:
            owned = store.finish(session, context.claim, JobState.NEEDS_REVIEW, "needs_review",
                                 reason, detail, route_log=context.route_log)
            if not owned:
                return self._lost_lease()
            session.add(ReviewItem(
                job_id=context.job_id, reason=reason, raw_output=without_nul(self.best.raw_output),
                errors=[issue.as_dict() for issue in self.best.issues],
            ))
        logger.warning("job sent to review", extra={
            "action": "job.needs_review", "reason": reason, **context.log})
        return self._finished(JobState.NEEDS_REVIEW)

    def _requeue(self, reason: str, delay_s: float, *, deferred: bool) -> Outcome:
        context = self.context
        with session_scope() as session:
            owned = store.requeue(session, context.claim, reason, delay_s, reason,
                                  context.route_log, deferred=deferred)
        if not owned:
            return self._lost_lease()
        logger.info("attempt will be retried", extra={
            "action": "job.deferred" if deferred else "job.retry_scheduled",
            "reason": reason, "delay_s": round(delay_s, 3), **context.log})
        metrics.JOBS_FINISHED.labels(context.workflow.name, JobState.QUEUED.value).inc()
        return Outcome(JobState.QUEUED, retry_in_s=delay_s)

    def _finished(self, state: JobState) -> Outcome:
        workflow = self.context.workflow.name
        metrics.JOBS_FINISHED.labels(workflow, state.value).inc()
        age_s = (utcnow() - self.context.created_at).total_seconds()
        metrics.JOB_DURATION.labels(workflow, state.value).observe(age_s)
        return Outcome(state)

    def _lost_lease(self) -> Outcome:
        logger.warning("job was taken over by another worker; this attempt's result is dropped",
                       extra={"action": "job.lease_lost", **self.context.log})
        return Outcome(None)
