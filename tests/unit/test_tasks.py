from __future__ import annotations

import pytest

from worker.celery_app import VISIBILITY_TIMEOUT_S, app
from worker.settings import get_settings
from worker.tasks import countdown_for


def test_countdown_stays_far_below_visibility_timeout() -> None:
    assert countdown_for(3600 * 24) <= VISIBILITY_TIMEOUT_S / 10
    assert countdown_for(12.5) == 12.5
    assert countdown_for(-1) == 0


def test_delivery_settings_protect_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    # Reading the configuration needs a broker URL; nothing connects to it here.
    monkeypatch.setenv("SLUICE_REDIS_URL", "redis://127.0.0.1:6379/0")
    get_settings.cache_clear()
    conf = app.conf
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.broker_transport_options["visibility_timeout"] == VISIBILITY_TIMEOUT_S
    assert conf.task_time_limit < VISIBILITY_TIMEOUT_S
