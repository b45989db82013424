"""The key that signs review session cookies, generated once and kept in Postgres.

Keeping it in the `app_secrets` table rather than in a setting means a deployment needs
no configuration for it, and every API process signs and accepts the same cookies.
Deleting the row and restarting the API processes rotates it, which logs everyone out.
"""

from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from models import AppSecret

SESSION_SECRET_NAME = "review_session"


def session_secret(session: Session) -> str:
    """Return the stored secret, creating it first if no process has done so yet."""
    # ON CONFLICT DO NOTHING lets two processes starting together both read the one
    # value that won.
    session.execute(
        insert(AppSecret)
        .values(name=SESSION_SECRET_NAME, value=secrets.token_urlsafe(48))
        .on_conflict_do_nothing(index_elements=[AppSecret.name])
    )
    return session.scalars(
        select(AppSecret.value).where(AppSecret.name == SESSION_SECRET_NAME)
    ).one()
