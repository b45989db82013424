"""Standard Webhooks signatures (https://www.standardwebhooks.com/) for intake and callbacks.

The signed content is `{webhook-id}.{webhook-timestamp}.{body}`. Each signature is
`v1,` followed by the base64 HMAC-SHA256 of that content, keyed with the base64-decoded
part of a `whsec_...` secret. Several signatures are separated by spaces, one per
active secret, so a receiver with any one of them can verify during a rotation.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable

from worker.errors import SluiceError

SECRET_PREFIX = "whsec_"


class InvalidSecretError(SluiceError, ValueError):
    """A webhook secret is not `whsec_` followed by non-empty base64."""


def decode_secret(secret: str) -> bytes:
    """Return the HMAC key of a `whsec_<base64>` secret (the prefix is optional)."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded, validate=True)
    except binascii.Error as exc:
        raise InvalidSecretError(
            "webhook secret is not whsec_ followed by base64; create a new secret for the "
            "tenant") from exc
    if not key:
        raise InvalidSecretError("webhook secret is empty; create a new secret for the tenant")
    return key


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """Return one `v1,<base64>` signature of `webhook_id.timestamp.body`."""
    content = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(decode_secret(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signature_header(secrets: Iterable[str], webhook_id: str, timestamp: int,
                     body: bytes) -> str:
    """Return the `webhook-signature` value: one signature per secret, space-separated."""
    return " ".join(sign(secret, webhook_id, timestamp, body) for secret in secrets)
