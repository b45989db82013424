"""Settings of the review pages, read from `SLUICE_REVIEW_*` environment variables."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ReviewSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SLUICE_REVIEW_", frozen=True)

    claim_ttl_s: int = Field(
        default=1800, ge=10, le=86_400,
        description="How long a claim keeps other reviewers off an item; after it, another "
        "reviewer may take the item over.",
    )
    session_max_age_s: int = Field(
        default=12 * 3600, ge=60,
        description="Lifetime of a login; the browser must log in again after it.",
    )
    https_only: bool = Field(
        default=False,
        description="Send the session cookie over HTTPS only; turn on behind a TLS proxy.",
    )
    queue_limit: int = Field(default=200, ge=1, le=5000,
                             description="Rows shown on one queue page.")


@lru_cache(maxsize=1)
def get_review_settings() -> ReviewSettings:
    """Return the process's review settings; tests clear the cache after changing them."""
    return ReviewSettings()
