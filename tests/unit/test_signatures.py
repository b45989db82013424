"""Standard Webhooks signing and verification of intake requests, without a server."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook

from worker.api.auth import verify_signature
from worker.api.errors import ApiError
from worker.signing import decode_secret, sign
from worker.tenants import hash_api_key, key_prefix, new_api_key, new_webhook_secret

# The test vector published with the Standard Webhooks reference libraries
# (libraries/python/tests/test_webhooks.py, test_sign_function, in
# github.com/standard-webhooks/standard-webhooks).
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def verify(secrets: list[str], signature: str, *, body: bytes = VECTOR_BODY,
           timestamp: str = str(VECTOR_TIMESTAMP), now: float = VECTOR_TIMESTAMP) -> None:
    verify_signature(secrets, VECTOR_ID, timestamp, signature, body, now, 300)


def rejection(secrets: list[str], signature: str, **kwargs: object) -> str:
    with pytest.raises(ApiError) as caught:
        verify(secrets, signature, **kwargs)  # type: ignore[arg-type]
    assert caught.value.status == 401
    return caught.value.code


def test_sign_matches_published_vector() -> None:
    assert sign(VECTOR_SECRET, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY) == VECTOR_SIGNATURE


def test_verify_accepts_published_vector() -> None:
    verify([VECTOR_SECRET], VECTOR_SIGNATURE)


def test_secret_without_prefix_is_accepted() -> None:
    verify([VECTOR_SECRET.removeprefix("whsec_")], VECTOR_SIGNATURE)


def test_one_valid_entry_among_several_is_enough() -> None:
    header = " ".join([
        "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=",
        "v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=",
        VECTOR_SIGNATURE,
    ])
    verify([VECTOR_SECRET], header)


def test_any_active_secret_may_match() -> None:
    verify([new_webhook_secret(), VECTOR_SECRET], VECTOR_SIGNATURE)


def test_tampered_body_is_rejected() -> None:
    code = rejection([VECTOR_SECRET], VECTOR_SIGNATURE, body=b'{"test": 2432232315}')
    assert code == "invalid_signature"


def test_reserialised_body_is_rejected() -> None:
    code = rejection([VECTOR_SECRET], VECTOR_SIGNATURE, body=b'{"test":2432232314}')
    assert code == "invalid_signature"


def test_wrong_secret_is_rejected() -> None:
    assert rejection([new_webhook_secret()], VECTOR_SIGNATURE) == "invalid_signature"


def test_other_version_entry_is_ignored() -> None:
    header = VECTOR_SIGNATURE.replace("v1,", "v1a,")
    assert rejection([VECTOR_SECRET], header) == "invalid_signature"


def test_no_secret_fails_closed() -> None:
    assert rejection([], VECTOR_SIGNATURE) == "invalid_signature"


@pytest.mark.parametrize("offset_s", [-300, 0, 300])
def test_timestamp_within_tolerance_is_accepted(offset_s: int) -> None:
    verify([VECTOR_SECRET], VECTOR_SIGNATURE, now=VECTOR_TIMESTAMP + offset_s)


@pytest.mark.parametrize("offset_s", [-301, 301, 86400])
def test_timestamp_outside_tolerance_is_stale(offset_s: int) -> None:
    code = rejection([VECTOR_SECRET], VECTOR_SIGNATURE, now=VECTOR_TIMESTAMP + offset_s)
    assert code == "stale_timestamp"


@pytest.mark.parametrize("timestamp", ["hello", "1614265330.5", ""])
def test_malformed_timestamp_is_rejected(timestamp: str) -> None:
    assert rejection([VECTOR_SECRET], VECTOR_SIGNATURE, timestamp=timestamp) == (
        "invalid_signature")


def test_signature_matches_reference_library() -> None:
    secret = new_webhook_secret()
    body = '{"workflow": "support_tickets", "input": {"text": "héllo"}}'.encode()
    when = datetime.fromtimestamp(1767225600, tz=UTC)

    ours = sign(secret, "msg_1", 1767225600, body)

    assert ours == Webhook(secret).sign("msg_1", when, body)


def test_reference_library_verifies_our_signature() -> None:
    secret = new_webhook_secret()
    now = int(datetime.now(tz=UTC).timestamp())
    headers = {"webhook-id": "msg_2", "webhook-timestamp": str(now),
               "webhook-signature": sign(secret, "msg_2", now, VECTOR_BODY)}

    assert Webhook(secret).verify(VECTOR_BODY, headers) == {"test": 2432232314}


def test_new_secret_has_32_random_bytes() -> None:
    secret = new_webhook_secret()

    assert secret.startswith("whsec_")
    assert len(decode_secret(secret)) == 32
    assert secret != new_webhook_secret()


def test_malformed_secret_is_named() -> None:
    with pytest.raises(ValueError, match="base64"):
        decode_secret("whsec_not base64!")


def test_new_api_key_shape() -> None:
    key = new_api_key()
    token = key.removeprefix("slk_")

    assert key.startswith("slk_")
    assert len(base64.urlsafe_b64decode(token + "=")) == 32
    assert key_prefix(key) == key[:12]
    assert len(hash_api_key(key)) == 64
