"""Per-tenant intake limits: a submission rate and a ceiling on waiting jobs.

Both respond 429 with Retry-After, so a well-behaved caller slows down instead of failing.
"""

from __future__ import annotations

import logging
import math

import redis
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models import Job, JobState
from worker.api.errors import ApiError
from worker.redis_client import get_redis
from worker.settings import get_settings

logger = logging.getLogger(__name__)

WINDOW_S = 60
WAITING_STATES = (JobState.RECEIVED, JobState.QUEUED)


def check_intake_rate(tenant_id: str, per_minute: int | None, now: float) -> None:
    """Count this submission in the tenant's current minute; raise 429 past `per_minute`.

    A fixed window: a caller may send up to twice the rate across a window boundary, which
    is acceptable for shedding load. When Redis fails, the request is let through.
    """
    if per_minute is None:
        return
    window = int(now // WINDOW_S)
    key = f"sluice:intake:{tenant_id}:{window}"
    try:
        pipeline = get_redis().pipeline()
        pipeline.incr(key)
        pipeline.expire(key, 2 * WINDOW_S)
        count = int(pipeline.execute()[0])
    except redis.RedisError as exc:
        logger.warning("intake rate check skipped: Redis failed",
                       extra={"action": "intake.rate_check_failed", "tenant_id": tenant_id,
                              "error": type(exc).__name__})
        return
    if count <= per_minute:
        return
    retry_after = max(1, math.ceil((window + 1) * WINDOW_S - now))
    logger.info("intake rate exceeded", extra={"action": "intake.rate_limited",
                                               "tenant_id": tenant_id, "limit": per_minute})
    raise ApiError(429, "rate_limited",
                   f"tenant {tenant_id} may submit {per_minute} job(s) per minute; retry after "
                   f"{retry_after} s", headers={"Retry-After": str(retry_after)})


def check_backpressure(session: Session, tenant_id: str, max_queued: int | None) -> None:
    """Raise 429 when the tenant already has `max_queued` jobs received or queued."""
    if max_queued is None:
        return
    waiting = session.scalar(
        select(func.count()).select_from(Job)
        .where(Job.tenant_id == tenant_id, Job.state.in_(WAITING_STATES))
    ) or 0
    if waiting < max_queued:
        return
    retry_after = get_settings().backpressure_retry_after_s
    logger.info("intake backpressure", extra={"action": "intake.backpressure",
                                              "tenant_id": tenant_id, "waiting": waiting,
                                              "limit": max_queued})
    raise ApiError(429, "backpressure",
                   f"tenant {tenant_id} has {waiting} waiting job(s), at its limit of "
                   f"{max_queued}; retry after {retry_after} s, once workers have caught up",
                   headers={"Retry-After": str(retry_after)})
