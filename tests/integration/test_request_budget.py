"""No job ever makes more provider requests than SLUICE_MAX_REQUESTS_PER_JOB, whatever mix
of failures and bad outputs the provider returns."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, update

from models import Job, JobState, LLMCall
from tests.support import ScriptedClient, submit
from worker.db import session_scope
from worker.errors import ProviderError
from worker.pipeline.calls import Services
from worker.pipeline.run import run_job
from worker.settings import get_settings

TICKET = json.dumps({"category": "ORDER", "intent": "cancel_order", "priority": "normal",
                     "language": "en", "summary": "Customer wants to cancel an order."})


def outcome(kind: str) -> Any:
    if kind == "valid":
        return (TICKET, "stop")
    if kind == "invalid":
        return (TICKET.replace('"ORDER"', '"WEATHER"'), "stop")
    if kind == "cut":
        return (TICKET[:30], "length")
    if kind == "not_json":
        return ("Sure! Here is the JSON you asked for", "stop")
    transient = kind != "rejected"
    return ProviderError(kind, kind=kind, transient=transient, provider="simulator",
                         model="m", status=401 if kind == "rejected" else 503,
                         retry_after_s=0.1 if kind == "rate_limited" else None)


class EndlessClient(ScriptedClient):
    """Plays the script, then keeps failing with a server error."""

    def complete(self, *args: Any, **kwargs: Any) -> Any:
        if not self.script:
            self.script = [outcome("server_error")]
        return super().complete(*args, **kwargs)


KINDS = st.sampled_from(["valid", "invalid", "cut", "not_json", "server_error", "timeout",
                         "rate_limited", "rejected"])


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(script=st.lists(KINDS, max_size=40))
def test_requests_per_job_stay_within_budget(clean_db: str, script: list[str]) -> None:
    job_id = submit("support_tickets", {"text": "cancel my order"})
    client = EndlessClient([outcome(kind) for kind in script])
    services = Services(client=client, sleep=lambda _: None, jitter=lambda: 0.5)

    state = None
    for _ in range(30):
        state = run_job(job_id, services=services).state
        if state != JobState.QUEUED:
            break
        with session_scope() as session:
            session.execute(update(Job).where(Job.id == job_id).values(not_before=None))

    assert state in (JobState.SUCCEEDED, JobState.NEEDS_REVIEW)
    with session_scope() as session:
        calls = session.scalar(select(func.count()).select_from(LLMCall)
                               .where(LLMCall.job_id == job_id))
    assert calls == len(client.requests)
    assert calls <= get_settings().max_requests_per_job
