"""Intake authentication over HTTP: API keys, signatures, secret rotation, the CLI.

The fixtures and helpers here are imported by the other `test_intake_*` modules.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, update
from typer.testing import CliRunner

from models import Job, Tenant, WebhookSecret
from models.base import utcnow
from tests.support import use_settings
from worker.api import create_app
from worker.cli import app as cli_app
from worker.db import session_scope
from worker.signing import sign
from worker.tenants import create_tenant, issue_api_key, revoke_api_key, rotate_secret

TICKET = {"workflow": "support_tickets", "input": {"text": "Where is my refund?"},
          "external_id": "crm-1"}


@dataclass(frozen=True)
class Credentials:
    tenant_id: str
    api_key: str
    secret: str


@pytest.fixture
def intake_env(clean_db: str, clean_redis: str,
               monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Database and broker with intake authentication required; removes test tenants."""
    use_settings(monkeypatch, database_url=clean_db, redis_url=clean_redis,
                 intake_auth="required")
    yield
    # clean_db empties jobs but keeps tenants; keys, secrets and idempotency keys cascade.
    with session_scope() as session:
        session.execute(delete(Job).where(Job.tenant_id != "default"))
        session.execute(delete(Tenant).where(Tenant.id != "default"))


@pytest.fixture
def intake(intake_env: None) -> Iterator[TestClient]:
    with TestClient(create_app()) as client:
        yield client


@pytest.fixture
def make_tenant(intake_env: None) -> Callable[..., Credentials]:
    def make(tenant_id: str = "acme", **options: Any) -> Credentials:
        with session_scope() as session:
            issued = create_tenant(session, tenant_id, f"{tenant_id} CRM", **options)
        assert issued.api_key is not None and issued.webhook_secret is not None
        return Credentials(tenant_id, issued.api_key, issued.webhook_secret)

    return make


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()


def signed_headers(creds: Credentials, raw: bytes, *, msg_id: str | None = None,
                   timestamp: int | None = None, secret: str | None = None) -> dict[str, str]:
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    timestamp = int(time.time()) if timestamp is None else timestamp
    return {
        "authorization": f"Bearer {creds.api_key}",
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret or creds.secret, msg_id, timestamp, raw),
    }


def post_signed(client: TestClient, creds: Credentials, body: dict[str, Any] | bytes,
                path: str = "/v1/jobs", **options: Any) -> Any:
    raw = body if isinstance(body, bytes) else encode(body)
    return client.post(path, content=raw, headers=signed_headers(creds, raw, **options))


def bearer(creds: Credentials) -> dict[str, str]:
    return {"authorization": f"Bearer {creds.api_key}"}


def error_code(response: Any) -> str:
    return str(response.json()["error"]["code"])


def job_tenant(job_id: str) -> str:
    with session_scope() as session:
        job = session.get(Job, uuid.UUID(job_id))
        assert job is not None
        return job.tenant_id


def test_signed_request_creates_tenant_job(
    intake: TestClient, make_tenant: Callable[..., Credentials]
) -> None:
    creds = make_tenant()

    response = post_signed(intake, creds, TICKET)

    assert response.status_code == 202
    assert job_tenant(response.json()["id"]) == "acme"


def test_missing_api_key_is_401(intake: TestClient) -> None:
    response = intake.post("/v1/jobs", json=TICKET)

    assert response.status_code == 401
    assert error_code(response) == "invalid_api_key"
    assert response.headers["www-authenticate"] == "Bearer"


def test_unknown_api_key_is_401(
    intake: TestClient, make_tenant: Callable[..., Credentials]
) -> None:
    creds = make_tenant()
    forged = Credentials(creds.tenant_id, creds.api_key[:-2] + "xx", creds.secret)

    response = post_signed(intake, forged, TICKET)

    assert response.status_code == 401
    assert error_code(response) == "invalid_api_key"


def test_revoked_key_is_401_and_new_key_works(
    intake: TestClient, make_tenant: Callable[..., Credentials]
) -> None:
    creds = make_tenant()
    with session_scope() as session:
        new_key = issue_api_key(session, creds.tenant_id)
        assert revoke_api_key(session, creds.tenant_id, creds.api_key[:12]) == 1

    revoked = post_signed(intake, creds, TICKET)
    renewed = post_signed(intake, Credentials(creds.tenant_id, new_key, creds.secret), TICKET)

    assert revoked.status_code == 401
    assert error_code(revoked) == "invalid_api_key"
    assert renewed.status_code == 202


def test_tampered_body_is_401(
    intake: TestClient, make_tenant: Callable[..., Credentials]
) -> None:
    creds = make_tenant()
    headers = signed_headers(creds, encode(TICKET))
    tampered = encode({**TICKET, "external_id": "crm-2"})

    response = intake.post("/v1/jobs", content=tampered, headers=headers)

    assert response.status_code == 401
    assert error_code(response) == "invalid_signature"


def test_signature_covers_raw_bytes(
    intake: TestClient, make_tenant: Callable[..., Credentials]
) -> None:
    creds = make_tenant()
    # Spacing that json.dumps would never produce: a verifier that re-serialised the JSON
    # would compute another signature.
    raw = b'{ "workflow" :"support_tickets",\n  "input": {"text": "Where is my refund?"} }'

    response = post_signed(intake, creds, raw)

    assert response.status_code == 202


@pytest.mark.parametrize("offset_s", [-301, 301])
def test_stale_or_future_timestamp_is_401(
    intake: TestClient, make_tenant: Callable[..., Credentials], offset_s: int
) -> None:
    creds = make_tenant()

    response = post_signed(intake, creds, TICKET, timestamp=int(time.time()) + offset_s)

    assert response.status_code == 401
    assert error_code(response) == "stale_timestamp"


@pytest.mark.parametrize("header", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_signature_header_is_401(
    intake: TestClient, make_tenant: Callable[..., Credentials], header: str
) -> None:
    creds = make_tenant()
    raw = encode(TICKET)
    headers = signed_headers(creds, raw)
    del headers[header]

    response = intake.post("/v1/jobs", content=raw, headers=headers)

    assert response.status_code == 401
    assert error_code(response) == "missing_signature"
    assert header in response.json()["error"]["message"]


def test_api_key_only_is_401_for_signing_tenant(
    intake: TestClient, make_tenant: Callable[..., Credentials]
) -> None:
    creds = make_tenant()

    response = intake.post("/v1/jobs", json=TICKET, headers=bearer(creds))

    assert response.status_code == 401
    assert error_code(response) == "missing_signature"


def test_unsigned_tenant_accepts_api_key_only(
    intake: TestClient, make_tenant: Callable[..., Credentials]
) -> None:
    creds = make_tenant(allow_unsigned=True)

    response = intake.post("/v1/jobs", json=TICKET, headers=bearer(creds))

    assert response.status_code == 202


def test_unsigned_tenant_still_rejects_bad_signature(
    intake: TestClient, make_tenant: Callable[..., Credentials]
) -> None:
    creds = make_tenant(allow_unsigned=True)
    other = make_tenant("other")

    response = post_signed(intake, creds, TICKET, secret=other.secret)

    assert response.status_code == 401
    assert error_code(response) == "invalid_signature"


def expire_secrets(tenant_id: str) -> None:
    with session_scope() as session:
        session.execute(update(WebhookSecret).where(WebhookSecret.tenant_id == tenant_id)
                        .values(expires_at=utcnow() - timedelta(seconds=1)))


def test_tenant_without_active_secret_fails_closed(
    intake: TestClient, make_tenant: Callable[..., Credentials]
) -> None:
    creds = make_tenant()
    expire_secrets(creds.tenant_id)

    signed = post_signed(intake, creds, TICKET)
    unsigned = intake.post("/v1/jobs", json=TICKET, headers=bearer(creds))

    assert signed.status_code == 401
    assert error_code(signed) == "invalid_signature"
    assert "no active webhook secret" in signed.json()["error"]["message"]
    assert unsigned.status_code == 401
    assert error_code(unsigned) == "missing_signature"


def test_unsigned_tenant_without_secret_accepts_key(
    intake: TestClient, make_tenant: Callable[..., Credentials]
) -> None:
    creds = make_tenant(allow_unsigned=True)
    expire_secrets(creds.tenant_id)

    response = intake.post("/v1/jobs", json=TICKET, headers=bearer(creds))

    assert response.status_code == 202


def test_rotated_secret_keeps_old_one_until_expiry(
    intake: TestClient, make_tenant: Callable[..., Credentials]
) -> None:
    creds = make_tenant()
    with session_scope() as session:
        new_secret = rotate_secret(session, creds.tenant_id, keep_old_for_s=3600)

    with_old = post_signed(intake, creds, TICKET)
    with_new = post_signed(intake, creds, TICKET, secret=new_secret)
    expire_old = update(WebhookSecret).where(WebhookSecret.secret == creds.secret)
    with session_scope() as session:
        session.execute(expire_old.values(expires_at=utcnow() - timedelta(seconds=1)))
    after_expiry = post_signed(intake, creds, TICKET)
    new_after_expiry = post_signed(intake, creds, TICKET, secret=new_secret)

    assert with_old.status_code == 202
    assert with_new.status_code == 202
    assert after_expiry.status_code == 401
    assert error_code(after_expiry) == "invalid_signature"
    assert new_after_expiry.status_code == 202


def test_rotation_with_no_grace_ends_old_secret(
    intake: TestClient, make_tenant: Callable[..., Credentials]
) -> None:
    creds = make_tenant()
    with session_scope() as session:
        new_secret = rotate_secret(session, creds.tenant_id, keep_old_for_s=0)

    assert post_signed(intake, creds, TICKET).status_code == 401
    assert post_signed(intake, creds, TICKET, secret=new_secret).status_code == 202


def test_other_tenants_job_is_404(
    intake: TestClient, make_tenant: Callable[..., Credentials]
) -> None:
    acme = make_tenant()
    other = make_tenant("other")
    job_id = post_signed(intake, acme, TICKET).json()["id"]

    own = intake.get(f"/v1/jobs/{job_id}", headers=bearer(acme))
    foreign = intake.get(f"/v1/jobs/{job_id}", headers=bearer(other))

    assert own.status_code == 200
    assert foreign.status_code == 404
    assert error_code(foreign) == "job_not_found"


def test_read_without_key_is_401(
    intake: TestClient, make_tenant: Callable[..., Credentials]
) -> None:
    creds = make_tenant()
    job_id = post_signed(intake, creds, TICKET).json()["id"]

    response = intake.get(f"/v1/jobs/{job_id}")

    assert response.status_code == 401
    assert error_code(response) == "invalid_api_key"


def test_auth_off_maps_anonymous_to_default(
    intake_env: None, make_tenant: Callable[..., Credentials],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    creds = make_tenant()
    use_settings(monkeypatch, intake_auth="off")
    with TestClient(create_app()) as client:
        anonymous = client.post("/v1/jobs", json=TICKET)
        keyed = post_signed(client, creds, TICKET)
        unsigned_keyed = client.post("/v1/jobs", json=TICKET, headers=bearer(creds))

    assert anonymous.status_code == 202
    assert job_tenant(anonymous.json()["id"]) == "default"
    assert keyed.status_code == 202
    assert job_tenant(keyed.json()["id"]) == "acme"
    assert unsigned_keyed.status_code == 401


def run_cli(*args: str) -> Any:
    result = CliRunner().invoke(cli_app, ["tenants", *args])
    return result


def test_cli_creates_lists_rotates_and_revokes(intake: TestClient) -> None:
    created = run_cli("create", "globex", "--name", "Globex ERP", "--intake-per-minute", "60")
    assert created.exit_code == 0, created.output
    lines = dict(line.split(":", 1) for line in created.output.splitlines() if ":" in line)
    api_key = lines["API key"].strip()
    secret = lines["webhook secret"].strip()
    creds = Credentials("globex", api_key, secret)

    listed = run_cli("list")
    rotated = run_cli("rotate-secret", "globex", "--keep-old-for-s", "0")
    new_secret = rotated.output.split("webhook secret:", 1)[1].split()[0]
    old_after_rotation = post_signed(intake, creds, TICKET)
    new_after_rotation = post_signed(intake, creds, TICKET, secret=new_secret)
    revoked = run_cli("revoke-key", "globex", api_key[:12])
    after_revoke = post_signed(intake, creds, TICKET, secret=new_secret)

    assert api_key.startswith("slk_")
    assert secret.startswith("whsec_")
    assert listed.exit_code == 0, listed.output
    assert api_key[:12] in listed.output
    assert api_key not in listed.output
    assert secret not in listed.output
    assert rotated.exit_code == 0, rotated.output
    assert old_after_rotation.status_code == 401
    assert new_after_rotation.status_code == 202
    assert revoked.exit_code == 0, revoked.output
    assert after_revoke.status_code == 401


def test_cli_rejects_duplicate_and_unknown_tenants(intake: TestClient) -> None:
    assert run_cli("create", "globex", "--name", "Globex").exit_code == 0

    duplicate = run_cli("create", "globex", "--name", "Globex again")
    unknown = run_cli("rotate-secret", "nobody")

    assert duplicate.exit_code != 0
    assert "already exists" in str(duplicate.exception)
    assert unknown.exit_code != 0
    assert "does not exist" in str(unknown.exception)


def test_key_is_checked_before_body(intake: TestClient) -> None:
    invalid = intake.post("/v1/jobs", json={"input": "not an object"})
    unknown_workflow = intake.post("/v1/jobs", json={**TICKET, "workflow": "tickets"})

    assert invalid.status_code == 401
    assert unknown_workflow.status_code == 401
