"""Schemathesis generates requests from the OpenAPI document; none may cause a 5xx.

The cases are drawn with Hypothesis directly from each operation's strategy, because
schemathesis's pytest plugin does not load under the pytest version used here.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.support import use_settings
from worker.api import create_app


def check_operation(operation: Any) -> int:
    calls = 0

    @given(case=operation.as_strategy())
    @settings(max_examples=60, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def no_server_error(case: Any) -> None:
        nonlocal calls
        calls += 1
        response = case.call()
        assert response.status_code < 500, (case.method, case.path, response.text[:500])

    no_server_error()
    return calls


def test_no_generated_request_causes_a_server_error(
    clean_db: str, clean_redis: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_settings(monkeypatch, database_url=clean_db, redis_url=clean_redis)
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app())

    operations = [result.ok() for result in schema.get_all_operations()]
    calls = {f"{op.method.upper()} {op.path}": check_operation(op) for op in operations}

    assert {"POST /v1/jobs", "GET /v1/jobs/{job_id}"} <= set(calls)
    assert all(count > 0 for count in calls.values()), calls
