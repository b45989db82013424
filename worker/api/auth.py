"""Caller authentication: tenant API keys, and Standard Webhooks signatures on intake.

A request names its tenant with `Authorization: Bearer slk_...`. A request that creates or
changes a job must also carry a signature made with one of the tenant's webhook secrets
(`webhook-id`, `webhook-timestamp`, `webhook-signature`) over the raw request body, unless
the tenant allows unsigned requests. Reads need the API key only.
"""

from __future__ import annotations

import hmac
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from models import ApiKey, Tenant, WebhookSecret
from models.base import utcnow
from worker.api.errors import ApiError
from worker.db import session_scope
from worker.settings import get_settings
from worker.signing import sign
from worker.tenants import API_KEY_PREFIX, hash_api_key, key_prefix

logger = logging.getLogger(__name__)

DEFAULT_TENANT = "default"


@dataclass(frozen=True)
class Caller:
    """The tenant a request acts for, with the limits intake applies to it."""

    tenant_id: str
    intake_per_minute: int | None
    max_queued_jobs: int | None
    # The verified webhook-id of a signed request; intake uses it as the idempotency key
    # when the request has no Idempotency-Key header.
    webhook_id: str | None = None


def verify_signature(
    secrets: list[str], msg_id: str, timestamp_header: str, signature_header: str,
    body: bytes, now: float, tolerance_s: int,
) -> None:
    """Raise ApiError unless one `v1` signature of the header matches one of the secrets.

    The timestamp must be whole seconds within `tolerance_s` of `now` in either direction.
    Without a secret nothing can match, so the request is rejected (fail closed).
    """
    try:
        timestamp = int(timestamp_header)
    except ValueError:
        raise unauthorized("invalid_signature", f"webhook-timestamp {timestamp_header[:20]!r} "
                           "is not a Unix time in whole seconds") from None
    if abs(now - timestamp) > tolerance_s:
        raise unauthorized("stale_timestamp", f"webhook-timestamp {timestamp} is more than "
                           f"{tolerance_s} s away from the server's time {int(now)}; sign the "
                           "request again with the current time")
    if not secrets:
        raise unauthorized("invalid_signature", "the tenant has no active webhook secret, so "
                           "no signature can be valid; ask the operator to run "
                           "`sluice tenants rotate-secret`")
    offered = [entry.encode() for entry in signature_header.split() if entry.startswith("v1,")]
    for secret in secrets:
        expected = sign(secret, msg_id, timestamp, body).encode()
        # Every entry is compared in constant time, and the loop does not stop early.
        matches = [hmac.compare_digest(expected, entry) for entry in offered]
        if any(matches):
            return
    raise unauthorized("invalid_signature", "no webhook-signature entry matches the raw body "
                       "under any active secret of the tenant; sign the exact bytes sent")


def unauthorized(code: str, message: str) -> ApiError:
    return ApiError(401, code, message, headers={"WWW-Authenticate": "Bearer"})


async def raw_body(request: Request) -> bytes:
    """Return the request body exactly as received; Starlette caches it for the route."""
    return await request.body()


# Declared so that OpenAPI documents the scheme. `_tenant_of` reads the header itself, so a
# missing key gets the common 401 body instead of this class's own error.
bearer_scheme = HTTPBearer(auto_error=False, description="A tenant API key, slk_...")
BearerCredentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]


def read_caller(request: Request, _: BearerCredentials) -> Caller:
    """Authenticate a read by its API key."""
    with session_scope() as session:
        tenant = _tenant_of(session, request)
        return _caller(tenant)


def write_caller(request: Request, _: BearerCredentials,
                 body: Annotated[bytes, Depends(raw_body)]) -> Caller:
    """Authenticate a request that creates or changes a job: API key, then signature."""
    with session_scope() as session:
        tenant = _tenant_of(session, request)
        if tenant.id == DEFAULT_TENANT and _anonymous(request):
            return _caller(tenant)
        webhook_id = _check_signature(session, tenant, request, body)
        return _caller(tenant, webhook_id)


def _anonymous(request: Request) -> bool:
    return get_settings().intake_auth == "off" and "authorization" not in request.headers


def _caller(tenant: Tenant, webhook_id: str | None = None) -> Caller:
    return Caller(tenant.id, tenant.intake_per_minute, tenant.max_queued_jobs, webhook_id)


def _tenant_of(session: Session, request: Request) -> Tenant:
    if _anonymous(request):
        tenant = session.get(Tenant, DEFAULT_TENANT)
        if tenant is None:
            raise unauthorized("invalid_api_key", "SLUICE_INTAKE_AUTH is off but the default "
                               "tenant does not exist; send an API key")
        return tenant
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key.startswith(API_KEY_PREFIX):
        raise unauthorized("invalid_api_key", "missing or malformed API key; send "
                           "Authorization: Bearer slk_...")
    digest = hash_api_key(key)
    row = session.execute(
        select(ApiKey, Tenant).join(Tenant, Tenant.id == ApiKey.tenant_id)
        .where(ApiKey.key_hash == digest, ApiKey.revoked_at.is_(None))
    ).first()
    # The lookup is by hash, so its timing reveals nothing about the key. The compare below
    # guards against a database collation that would match hashes loosely.
    if row is None or not hmac.compare_digest(row.ApiKey.key_hash, digest):
        logger.info("API key rejected", extra={"action": "intake.auth_failed",
                                                "code": "invalid_api_key",
                                                "key_prefix": key_prefix(key)})
        raise unauthorized("invalid_api_key", "the API key is unknown or revoked; use a key "
                           "from `sluice tenants create` or ask the operator for a new one")
    found: Tenant = row.Tenant
    return found


def _check_signature(session: Session, tenant: Tenant, request: Request,
                     body: bytes) -> str | None:
    """Verify the request's signature; return its webhook-id, or None for unsigned."""
    headers = request.headers
    names = ("webhook-id", "webhook-timestamp", "webhook-signature")
    values = [headers.get(name) for name in names]
    if tenant.allow_unsigned and not any(values):
        return None
    if not all(values):
        missing = [name for name, value in zip(names, values, strict=True) if not value]
        raise _rejected(tenant, "missing_signature", "the tenant requires signed requests; "
                        f"missing header(s): {', '.join(missing)}")
    msg_id, timestamp, signature = (str(value) for value in values)
    try:
        verify_signature(active_secrets(session, tenant.id, utcnow()), msg_id, timestamp,
                         signature, body, time.time(), get_settings().signature_tolerance_s)
    except ApiError as exc:
        raise _rejected(tenant, exc.code, exc.message) from None
    return msg_id


def _rejected(tenant: Tenant, code: str, message: str) -> ApiError:
    logger.info("signed request rejected", extra={"action": "intake.auth_failed",
                                                  "code": code, "tenant_id": tenant.id})
    return unauthorized(code, message)


def active_secrets(session: Session, tenant_id: str, now: datetime) -> list[str]:
    """Return the tenant's secrets that have not expired, newest first."""
    rows = session.scalars(
        select(WebhookSecret.secret)
        .where(WebhookSecret.tenant_id == tenant_id,
               or_(WebhookSecret.expires_at.is_(None), WebhookSecret.expires_at > now))
        .order_by(WebhookSecret.created_at.desc())
    )
    return list(rows)
