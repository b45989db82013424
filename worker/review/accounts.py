"""Reviewer accounts: creation, password hashing and login checks."""

from __future__ import annotations

import logging
import re

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Reviewer
from worker.errors import SluiceError

logger = logging.getLogger(__name__)

# argon2-cffi's defaults follow RFC 9106's second recommended option (Argon2id, 64 MiB).
_hasher = PasswordHasher()
MIN_PASSWORD_LENGTH = 10
_USERNAME = re.compile(r"^[A-Za-z0-9._@-]{1,100}$")
# Verified when the username is unknown, so a failed login takes as long either way.
_UNKNOWN_USER_HASH = _hasher.hash("no reviewer has this password")


class AccountError(SluiceError):
    """A reviewer account cannot be created or changed as requested."""


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(
            f"password is too short ({len(password)} characters); use at least "
            f"{MIN_PASSWORD_LENGTH}"
        )
    return _hasher.hash(password)


def add_reviewer(session: Session, username: str, password: str) -> Reviewer:
    """Create an enabled reviewer; raise AccountError for a taken or malformed username."""
    if not _USERNAME.match(username):
        raise AccountError(
            f"username {username!r} is invalid; use 1-100 letters, digits or . _ @ -"
        )
    if session.scalar(select(Reviewer).where(Reviewer.username == username)) is not None:
        raise AccountError(f"reviewer {username!r} already exists")
    reviewer = Reviewer(username=username, password_hash=hash_password(password))
    session.add(reviewer)
    session.flush()
    logger.info("reviewer added", extra={"action": "review.reviewer_added",
                                         "reviewer": username})
    return reviewer


def set_disabled(session: Session, username: str, disabled: bool) -> Reviewer:
    reviewer = session.scalar(select(Reviewer).where(Reviewer.username == username))
    if reviewer is None:
        raise AccountError(f"reviewer {username!r} does not exist")
    reviewer.disabled = disabled
    return reviewer


def authenticate(session: Session, username: str, password: str) -> Reviewer | None:
    """Return the enabled reviewer whose password matches, else None.

    A hash made with weaker parameters than the current defaults is replaced on success.
    """
    # PostgreSQL cannot compare text with NUL in it, and no valid username contains one.
    known = _USERNAME.match(username) is not None
    reviewer = (session.scalar(select(Reviewer).where(Reviewer.username == username))
                if known else None)
    stored = reviewer.password_hash if reviewer is not None else _UNKNOWN_USER_HASH
    try:
        _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return None
    if reviewer is None or reviewer.disabled:
        return None
    if _hasher.check_needs_rehash(reviewer.password_hash):
        reviewer.password_hash = _hasher.hash(password)
    return reviewer
