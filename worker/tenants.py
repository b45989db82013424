"""Tenants and their credentials: create a tenant, issue and revoke API keys, rotate secrets.

API keys are stored as SHA-256 hashes with a short prefix, so a key is shown once, when it is
issued. Webhook secrets are stored as they are, because HMAC needs the secret itself.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from models import ApiKey, Tenant, WebhookSecret
from models.base import utcnow
from worker.errors import SluiceError
from worker.signing import SECRET_PREFIX

logger = logging.getLogger(__name__)

API_KEY_PREFIX = "slk_"
# "slk_" and 8 characters of the token: enough to tell keys apart in `sluice tenants list`,
# far too few to guess the rest.
KEY_PREFIX_LENGTH = 12
TENANT_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
SECRET_BYTES = 32


class TenantError(SluiceError):
    """A tenant command failed. The message names the cause and the fix."""


@dataclass(frozen=True)
class IssuedCredentials:
    """Credentials shown once, when they are made."""

    tenant_id: str
    api_key: str | None
    webhook_secret: str | None


@dataclass(frozen=True)
class TenantSummary:
    id: str
    name: str
    callback_url: str | None
    allow_unsigned: bool
    intake_per_minute: int | None
    max_queued_jobs: int | None
    active_keys: list[str]
    active_secrets: int


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_prefix(key: str) -> str:
    return key[:KEY_PREFIX_LENGTH]


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def new_webhook_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def create_tenant(
    session: Session, tenant_id: str, name: str, *, callback_url: str | None = None,
    allow_unsigned: bool = False, intake_per_minute: int | None = None,
    max_queued_jobs: int | None = None,
) -> IssuedCredentials:
    """Insert a tenant with one API key and one webhook secret."""
    if not TENANT_ID.fullmatch(tenant_id):
        raise TenantError(f"tenant id {tenant_id!r} is invalid; use 1-64 lowercase letters, "
                          "digits, '-' or '_', starting with a letter or digit")
    if session.get(Tenant, tenant_id) is not None:
        raise TenantError(f"tenant {tenant_id!r} already exists; pick another id or use "
                          "`sluice tenants rotate-secret` for new credentials")
    session.add(Tenant(id=tenant_id, name=name, callback_url=callback_url,
                       allow_unsigned=allow_unsigned, intake_per_minute=intake_per_minute,
                       max_queued_jobs=max_queued_jobs))
    session.flush()
    api_key = issue_api_key(session, tenant_id)
    secret = _add_secret(session, tenant_id)
    logger.info("tenant created", extra={"action": "tenant.created", "tenant_id": tenant_id})
    return IssuedCredentials(tenant_id, api_key, secret)


def issue_api_key(session: Session, tenant_id: str, name: str | None = None) -> str:
    """Store a new API key's hash and return the key, which is not stored anywhere."""
    _require(session, tenant_id)
    key = new_api_key()
    session.add(ApiKey(tenant_id=tenant_id, prefix=key_prefix(key), key_hash=hash_api_key(key),
                       name=name))
    session.flush()
    logger.info("API key issued", extra={"action": "tenant.key_issued", "tenant_id": tenant_id,
                                         "key_prefix": key_prefix(key)})
    return key


def revoke_api_key(session: Session, tenant_id: str, prefix: str) -> int:
    """Revoke the tenant's active keys that start with `prefix`; return how many."""
    _require(session, tenant_id)
    if len(prefix) < len(API_KEY_PREFIX) + 4:
        raise TenantError(f"key prefix {prefix!r} is too short; give the prefix that "
                          "`sluice tenants list` shows, such as slk_Ab3dE9fG")
    rows = session.execute(
        update(ApiKey)
        .where(ApiKey.tenant_id == tenant_id, ApiKey.revoked_at.is_(None),
               ApiKey.prefix.startswith(prefix[:16], autoescape=True))
        .values(revoked_at=utcnow())
        .returning(ApiKey.id)
    ).all()
    logger.info("API keys revoked", extra={"action": "tenant.key_revoked",
                                           "tenant_id": tenant_id, "count": len(rows)})
    return len(rows)


def rotate_secret(session: Session, tenant_id: str, keep_old_for_s: int) -> str:
    """Add a new webhook secret; the active ones stay valid for `keep_old_for_s` more.

    A secret that already expires sooner keeps its earlier expiry.
    """
    _require(session, tenant_id)
    if keep_old_for_s < 0:
        raise TenantError(f"--keep-old-for-s {keep_old_for_s} is negative; use 0 to end the "
                          "old secrets now")
    now = utcnow()
    until = now + timedelta(seconds=keep_old_for_s)
    session.execute(
        update(WebhookSecret)
        .where(WebhookSecret.tenant_id == tenant_id,
               or_(WebhookSecret.expires_at.is_(None), WebhookSecret.expires_at > until))
        .values(expires_at=until)
    )
    secret = _add_secret(session, tenant_id)
    logger.info("webhook secret rotated", extra={"action": "tenant.secret_rotated",
                                                 "tenant_id": tenant_id,
                                                 "keep_old_for_s": keep_old_for_s})
    return secret


def list_tenants(session: Session, now: datetime | None = None) -> list[TenantSummary]:
    """Describe every tenant with its active key prefixes; no secret is returned."""
    now = now or utcnow()
    keys: dict[str, list[str]] = {}
    for tenant_id, prefix in session.execute(
        select(ApiKey.tenant_id, ApiKey.prefix).where(ApiKey.revoked_at.is_(None))
        .order_by(ApiKey.created_at)
    ):
        keys.setdefault(tenant_id, []).append(prefix)
    secret_counts = dict(session.execute(
        select(WebhookSecret.tenant_id, func.count())
        .where(or_(WebhookSecret.expires_at.is_(None), WebhookSecret.expires_at > now))
        .group_by(WebhookSecret.tenant_id)
    ).all())
    return [
        TenantSummary(t.id, t.name, t.callback_url, t.allow_unsigned, t.intake_per_minute,
                      t.max_queued_jobs, keys.get(t.id, []), secret_counts.get(t.id, 0))
        for t in session.scalars(select(Tenant).order_by(Tenant.id))
    ]


def _add_secret(session: Session, tenant_id: str) -> str:
    secret = new_webhook_secret()
    session.add(WebhookSecret(tenant_id=tenant_id, secret=secret))
    session.flush()
    return secret


def _require(session: Session, tenant_id: str) -> Tenant:
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        raise TenantError(f"tenant {tenant_id!r} does not exist; see `sluice tenants list`")
    return tenant
