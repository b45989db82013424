"""Callback delivery to a receiver on 127.0.0.1: signatures, retries, dead, redelivery."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import socket
import threading
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select
from typer.testing import CliRunner

from models import CallbackAttempt, CallbackOutbox, OutboxState, Tenant, WebhookSecret
from models.base import utcnow
from tests.support import scripted, submit, use_settings
from tests.unit.test_ssrf import Receiver, serve
from worker.callbacks.delivery import deliver_due
from worker.cli.callbacks import callbacks_app
from worker.db import session_scope
from worker.pipeline.run import run_job

TICKET = json.dumps({"category": "ORDER", "intent": "cancel_order", "priority": "normal",
                     "language": "en", "summary": "Customer wants to cancel an order."})


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """Check a Standard Webhooks signature the way a receiver would."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(hmac.compare_digest(signature.removeprefix("v1,"), expected)
               for signature in headers["webhook-signature"].split()
               if signature.startswith("v1,"))


class Clock:
    """A settable stand-in for utcnow, so retries become due without waiting."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def delivery_env(clean_db: str, port: int, monkeypatch: pytest.MonkeyPatch) -> str:
    use_settings(monkeypatch, callback_allow_http="true",
                 callback_allow_hosts=f"127.0.0.1:{port}", callback_timeout_s="2",
                 callback_retry_base_s="30", callback_retry_max_delay_s="600")
    return clean_db


@pytest.fixture
def receiver(port: int) -> Iterator[Receiver]:
    with serve(200, port=port) as server:
        yield server


def tenant_with_secrets(port: int, *secret_values: str,
                        expired: tuple[str, ...] = ()) -> str:
    tenant_id = "cb-" + uuid.uuid4().hex[:12]
    with session_scope() as session:
        session.add(Tenant(id=tenant_id, name=tenant_id,
                           callback_url=f"http://127.0.0.1:{port}/hook"))
        session.flush()
        for value in secret_values:
            session.add(WebhookSecret(tenant_id=tenant_id, secret=value,
                                      expires_at=utcnow() + timedelta(days=1)))
        for value in expired:
            session.add(WebhookSecret(tenant_id=tenant_id, secret=value,
                                      expires_at=utcnow() - timedelta(minutes=1)))
    return tenant_id


def succeeded_job(tenant: str) -> uuid.UUID:
    job_id = submit("support_tickets", {"text": "Please cancel my order 1234."}, tenant)
    run_job(job_id, services=scripted([(TICKET, "stop")])[1])
    return job_id


def failed_job(tenant: str) -> uuid.UUID:
    job_id = submit("no_such_workflow", {"text": "anything"}, tenant)
    run_job(job_id, services=scripted([])[1])
    return job_id


def outbox_of(job_id: uuid.UUID) -> CallbackOutbox:
    with session_scope() as session:
        return session.scalars(select(CallbackOutbox)
                               .where(CallbackOutbox.job_id == job_id)).one()


def attempts_of(outbox_id: uuid.UUID) -> list[CallbackAttempt]:
    with session_scope() as session:
        return list(session.scalars(select(CallbackAttempt)
                                    .where(CallbackAttempt.outbox_id == outbox_id)
                                    .order_by(CallbackAttempt.at)))


def test_down_then_up_delivers_once(delivery_env: str, port: int) -> None:
    current, rotating, old = new_secret(), new_secret(), new_secret()
    tenant = tenant_with_secrets(port, current, rotating, expired=(old,))
    job_ids = [succeeded_job(tenant), failed_job(tenant)]
    clock = Clock()
    refused_before = metric("sluice_callback_failures_total", reason="connection")

    first = deliver_due(clock=clock)

    assert first.retrying == 2
    assert metric("sluice_callback_failures_total", reason="connection") == refused_before + 2
    for job_id in job_ids:
        row = outbox_of(job_id)
        assert row.state == OutboxState.PENDING
        assert row.attempts == 1
        assert row.next_attempt_at > clock.now
        assert row.last_error is not None and "ConnectError" in row.last_error
    assert deliver_due(clock=clock).attempted == 0

    with serve(200, port=port) as receiver_server:
        clock.advance(3600)
        second = deliver_due(clock=clock)
        clock.advance(3600)
        third = deliver_due(clock=clock)
        received = list(receiver_server.requests)

    assert second.delivered == 2
    assert third.attempted == 0
    rows = {job_id: outbox_of(job_id) for job_id in job_ids}
    assert sorted(request["headers"]["webhook-id"] for request in received) == sorted(
        row.webhook_id for row in rows.values())
    for request in received:
        headers, body = request["headers"], request["body"]
        assert verify(current, headers, body)
        assert verify(rotating, headers, body)
        assert not verify(old, headers, body)
        assert len(headers["webhook-signature"].split()) == 2
        assert headers["content-type"] == "application/json"
    events = {json.loads(request["body"])["type"] for request in received}
    assert events == {"job.succeeded", "job.failed"}
    for row in rows.values():
        assert row.state == OutboxState.DELIVERED
        assert row.attempts == 2
        assert row.delivered_at is not None
        assert [a.status_code for a in attempts_of(row.id)] == [None, 200]


def test_signature_fails_with_wrong_secret(delivery_env: str, port: int,
                                           receiver: Receiver) -> None:
    tenant = tenant_with_secrets(port, new_secret())
    succeeded_job(tenant)

    assert deliver_due().delivered == 1

    [request] = receiver.requests
    assert not verify(new_secret(), request["headers"], request["body"])
    tampered = request["body"].replace(b"ORDER", b"OTHER")
    assert tampered != request["body"]
    with session_scope() as session:
        [secret] = session.scalars(select(WebhookSecret.secret)
                                   .where(WebhookSecret.tenant_id == tenant)).all()
    assert verify(secret, request["headers"], request["body"])
    assert not verify(secret, request["headers"], tampered)


def test_dead_after_retry_window(delivery_env: str, port: int, receiver: Receiver,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    use_settings(monkeypatch, callback_retry_window_s="60")
    receiver.status = 500
    job_id = succeeded_job(tenant_with_secrets(port, new_secret()))
    clock = Clock()
    dead_before = metric("sluice_callback_deliveries_total", outcome="dead")
    status_before = metric("sluice_callback_failures_total", reason="status")

    assert deliver_due(clock=clock).retrying == 1
    row = outbox_of(job_id)
    # The retry is due no later than the end of the window.
    assert row.next_attempt_at <= row.created_at + timedelta(seconds=60)
    clock.advance(61)
    assert deliver_due(clock=clock).dead == 1

    row = outbox_of(job_id)
    assert row.state == OutboxState.DEAD
    assert row.attempts == 2
    assert row.last_error == "HTTP 500"
    assert [a.status_code for a in attempts_of(row.id)] == [500, 500]
    assert metric("sluice_callback_deliveries_total", outcome="dead") == dead_before + 1
    assert metric("sluice_callback_failures_total", reason="status") == status_before + 2
    clock.advance(3600)
    assert deliver_due(clock=clock).attempted == 0
    assert len(receiver.requests) == 2


def test_redeliver_dead_callback_by_cli(delivery_env: str, port: int, receiver: Receiver,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    use_settings(monkeypatch, callback_retry_window_s="0")
    receiver.status = 503
    job_id = succeeded_job(tenant_with_secrets(port, new_secret()))
    assert deliver_due().dead == 1
    row = outbox_of(job_id)
    runner = CliRunner()

    listed = runner.invoke(callbacks_app, ["list", "--dead"])
    redelivered = runner.invoke(callbacks_app, ["redeliver", str(row.id)])
    receiver.status = 200
    report = deliver_due()

    assert listed.exit_code == 0, listed.output
    assert str(row.id) in listed.output
    assert "HTTP 503" in listed.output
    assert redelivered.exit_code == 0, redelivered.output
    assert "pending again" in redelivered.output
    assert report.delivered == 1
    row = outbox_of(job_id)
    assert row.state == OutboxState.DELIVERED
    assert row.attempts == 2
    webhook_ids = {request["headers"]["webhook-id"] for request in receiver.requests}
    assert webhook_ids == {row.webhook_id}


def test_redeliver_unknown_id_fails(delivery_env: str) -> None:
    result = CliRunner().invoke(callbacks_app, ["redeliver", str(uuid.uuid4())])

    assert result.exit_code != 0
    assert "does not exist" in str(result.exception)


def test_http_url_dead_without_allow_http(delivery_env: str, port: int,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    use_settings(monkeypatch, callback_allow_http="false")
    job_id = succeeded_job(tenant_with_secrets(port, new_secret()))

    assert deliver_due().dead == 1

    row = outbox_of(job_id)
    assert row.state == OutboxState.DEAD
    assert row.last_error is not None and "uses http" in row.last_error


def test_concurrent_runs_send_each_once(delivery_env: str, port: int,
                                        receiver: Receiver) -> None:
    tenant = tenant_with_secrets(port, new_secret())
    for _ in range(8):
        succeeded_job(tenant)
    barrier = threading.Barrier(3)
    reports: list[Any] = []

    def run() -> None:
        barrier.wait()
        reports.append(deliver_due())

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert sum(report.delivered for report in reports) == 8
    webhook_ids = [request["headers"]["webhook-id"] for request in receiver.requests]
    assert len(webhook_ids) == 8
    assert len(set(webhook_ids)) == 8


def test_late_result_after_redelivery_ignored(delivery_env: str, port: int,
                                              receiver: Receiver) -> None:
    from worker.callbacks.delivery import claim_next, record_result
    from worker.callbacks.outbox import redeliver
    from worker.callbacks.sender import SendResult
    from worker.settings import get_settings

    job_id = succeeded_job(tenant_with_secrets(port, new_secret()))
    settings = get_settings()
    claimed = claim_next(utcnow(), settings)
    assert claimed is not None
    with session_scope() as session:
        redeliver(session, claimed.id)

    record_result(claimed, SendResult(None, "timeout", "timed out"), utcnow(), settings)

    row = outbox_of(job_id)
    assert row.state == OutboxState.PENDING
    assert row.attempts == 0
    assert len(attempts_of(row.id)) == 1
    assert deliver_due().delivered == 1

