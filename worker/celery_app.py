"""The Celery application.

Delivery rules: a task carries only a job id; it is acknowledged after it ran (`acks_late`),
and a task whose worker process died is put back (`task_reject_on_worker_lost`). The job's
attempt counter in Postgres bounds how often that can happen, so a job that kills its
worker every time goes to review instead of looping. Each worker takes one message at a
time per slot (`prefetch_multiplier=1`).
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import worker_process_init

from worker.db import reset_engine
from worker.errors import ConfigError
from worker.settings import get_settings

# Seconds Redis waits for an acknowledgement before it hands a task to another worker.
# Retry delays (`retry_max_delay_s`) and job time limits stay far below it, so a waiting
# or running task is never delivered twice by this timeout.
VISIBILITY_TIMEOUT_S = 2 * 60 * 60
TASK_TIME_LIMIT_S = 15 * 60


def broker_url() -> str:
    url = get_settings().redis_url
    if not url:
        raise ConfigError(
            "SLUICE_REDIS_URL is not set; set it, or start Sluice through a command that "
            "starts the embedded Redis (sluice demo, sluice services)"
        )
    return url


def create_celery() -> Celery:
    app = Celery("sluice", include=["worker.tasks"])
    # A callable is read when the app is first used, so a process that exports
    # SLUICE_REDIS_URL after import (the demo, the tests) still reaches the right broker.
    app.add_defaults(_celery_settings)
    return app


def _celery_settings() -> dict[str, Any]:
    return {
        "broker_url": broker_url(),
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": {"visibility_timeout": VISIBILITY_TIMEOUT_S},
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_ignore_result": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_time_limit": TASK_TIME_LIMIT_S,
        "task_soft_time_limit": TASK_TIME_LIMIT_S - 30,
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "worker_hijack_root_logger": False,
        "task_default_queue": "sluice",
        "beat_schedule": {
            "requeue-stalled-jobs": {
                "task": "sluice.requeue_stalled",
                "schedule": get_settings().reconcile_every_s,
            },
            "purge-idempotency-keys": {
                "task": "sluice.purge_idempotency_keys",
                "schedule": 3600.0,
            },
            "deliver-callbacks": {
                "task": "sluice.deliver_callbacks",
                "schedule": get_settings().callback_poll_s,
            },
        },
    }


app = create_celery()


@worker_process_init.connect
def _fresh_engine_after_fork(**_: Any) -> None:
    reset_engine()
