"""Password hashing of reviewer accounts (no database needed)."""

from __future__ import annotations

import pytest

from worker.review.accounts import MIN_PASSWORD_LENGTH, AccountError, hash_password


def test_hash_is_argon2id_and_salted() -> None:
    first = hash_password("a long password")
    second = hash_password("a long password")

    assert first.startswith("$argon2id$")
    assert first != second
    assert "a long password" not in first


def test_short_password_is_rejected() -> None:
    with pytest.raises(AccountError, match=f"at least {MIN_PASSWORD_LENGTH}"):
        hash_password("x" * (MIN_PASSWORD_LENGTH - 1))
