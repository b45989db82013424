"""Rate limits, injected faults and stats of the simulator, over real HTTP with the openai SDK."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from tests.integration.test_simulator_http import (
    document_messages,
    run_simulator,
    ticket_messages,
)
from worker.simulator import SimulatorSettings
from worker.simulator.faults import FaultInjector

TICKET_KEYS = {"category", "intent", "priority", "language", "summary"}
REQUEST_HEADERS = {
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
}
TOKEN_HEADERS = {
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-tokens",
}


@contextmanager
def simulator_client(
    settings: SimulatorSettings, timeout_s: float = 10.0
) -> Iterator[tuple[OpenAI, str]]:
    """Start a simulator with `settings` and yield an SDK client without retries and its URL."""
    with (
        run_simulator(settings) as url,
        OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0, timeout=timeout_s) as client,
    ):
        yield client, url


def create_raw(client: OpenAI, **options: Any) -> Any:
    """Send a ticket request and return the raw response, for reading its headers."""
    return client.chat.completions.with_raw_response.create(
        model="small-model", messages=ticket_messages(), **options
    )


def requests_log(url: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{url}/_simulator/requests")
    response.raise_for_status()
    entries: list[dict[str, Any]] = response.json()
    return entries


def test_rpm_exceeded_returns_429() -> None:
    with simulator_client(SimulatorSettings(rpm=60)) as (client, url):
        first = create_raw(client)
        with pytest.raises(openai.RateLimitError) as caught:
            create_raw(client)
        entries = requests_log(url)

    assert first.http_response.status_code == 200
    assert first.headers["x-ratelimit-limit-requests"] == "60"
    assert first.headers["x-ratelimit-remaining-requests"] == "0"
    reset = first.headers["x-ratelimit-reset-requests"]
    assert reset == "1s" or reset.endswith("ms")
    assert not TOKEN_HEADERS & set(first.headers)

    response = caught.value.response
    assert response.status_code == 429
    assert response.headers["retry-after"] == "1"
    assert 1 <= int(response.headers["retry-after-ms"]) <= 1000
    assert set(response.headers) >= REQUEST_HEADERS
    error = response.json()["error"]
    assert error["type"] == "requests"
    assert error["code"] == "rate_limit_exceeded"
    assert error["param"] is None
    assert error["message"].startswith("Rate limit reached for requests")

    assert [entry["outcome"] for entry in entries] == ["ok", "rate_limited_requests"]
    assert [entry["status"] for entry in entries] == [200, 429]
    rejected = entries[1]
    assert rejected["admitted"] is False
    assert rejected["admission_token_cost"] > 0
    assert rejected["prompt_tokens"] == 0


def test_headers_on_200_with_both_limits() -> None:
    with simulator_client(SimulatorSettings(rpm=600, tpm=60_000)) as (client, _):
        raw = create_raw(client)
        completion = raw.parse()

    assert set(raw.headers) >= REQUEST_HEADERS | TOKEN_HEADERS
    assert raw.headers["x-ratelimit-limit-requests"] == "600"
    assert raw.headers["x-ratelimit-limit-tokens"] == "60000"
    assert raw.headers["x-ratelimit-remaining-requests"] == "9"
    # Charged tokens are the usage; the bucket refills 1,000 per second meanwhile.
    used = completion.usage.total_tokens
    remaining = int(raw.headers["x-ratelimit-remaining-tokens"])
    assert 60_000 - used <= remaining < 60_000
    assert raw.headers["x-ratelimit-reset-tokens"].endswith("ms")


def test_no_limit_headers_without_limits() -> None:
    with simulator_client(SimulatorSettings()) as (client, _):
        raw = create_raw(client)

    assert not (REQUEST_HEADERS | TOKEN_HEADERS) & set(raw.headers)


def test_tokens_reconciled_then_limited() -> None:
    # 600 TPM with the default 60 s burst: a 600-token bucket refilling 10 tokens per second.
    with simulator_client(SimulatorSettings(tpm=600)) as (client, url):
        first = create_raw(client, max_completion_tokens=500)
        with pytest.raises(openai.RateLimitError) as caught:
            create_raw(client, max_completion_tokens=500)
        entries = requests_log(url)

    usage = first.parse().usage
    remaining = int(first.headers["x-ratelimit-remaining-tokens"])
    assert 600 - usage.total_tokens <= remaining <= 600 - usage.total_tokens + 5

    response = caught.value.response
    error = response.json()["error"]
    assert error["type"] == "tokens"
    assert error["message"].startswith("Rate limit reached for tokens")
    # The second request needs 500 tokens while the bucket contains about 600 - used.
    expected_wait_s = (500 - (600 - usage.total_tokens)) / 10
    assert int(response.headers["retry-after"]) == math.ceil(expected_wait_s)

    assert entries[0]["admission_token_cost"] == 500
    assert entries[0]["prompt_tokens"] == usage.prompt_tokens
    assert entries[0]["completion_tokens"] == usage.completion_tokens
    assert entries[1]["outcome"] == "rate_limited_tokens"


def test_request_too_large_for_tpm() -> None:
    with simulator_client(SimulatorSettings(tpm=600, token_burst_s=10)) as (client, url):
        with pytest.raises(openai.RateLimitError) as caught:
            create_raw(client, max_completion_tokens=101)
        fitting = create_raw(client, max_completion_tokens=100)
        entries = requests_log(url)

    response = caught.value.response
    assert response.status_code == 429
    assert "retry-after" not in response.headers
    assert "too large" in response.json()["error"]["message"]
    assert fitting.http_response.status_code == 200
    assert [entry["outcome"] for entry in entries] == ["request_too_large", "ok"]


def test_server_error_fault() -> None:
    settings = SimulatorSettings(server_error_rate=1.0, tpm=60_000, fault_seed=1)
    with simulator_client(settings) as (client, url):
        errors: list[openai.APIStatusError] = []
        for _ in range(12):
            with pytest.raises(openai.APIStatusError) as caught:
                create_raw(client)
            errors.append(caught.value)
        entries = requests_log(url)
        stats = httpx.get(f"{url}/_simulator/stats").json()

    statuses = {error.status_code for error in errors}
    assert statuses == {500, 503}
    for error in errors:
        if error.status_code == 500:
            assert isinstance(error, openai.InternalServerError)
        assert error.response.json()["error"]["type"] == "server_error"
        assert "x-ratelimit-remaining-tokens" in error.response.headers
    assert {entry["outcome"] for entry in entries} == {"server_error"}
    assert [entry["status"] for entry in entries] == [error.status_code for error in errors]
    # A failed request keeps its request slot but its tokens are refunded.
    assert all(entry["prompt_tokens"] == 0 for entry in entries)
    assert stats["limits"]["requests"]["accepted"] == 12
    assert stats["limits"]["tokens"]["accepted"] == 0
    assert int(errors[-1].response.headers["x-ratelimit-remaining-tokens"]) == 60_000


def test_error_in_200_fault() -> None:
    with simulator_client(SimulatorSettings(error_in_200_rate=1.0)) as (client, url):
        raw = create_raw(client)
        completion = raw.parse()
        entries = requests_log(url)

    # The SDK raises nothing: it returns a completion without choices and keeps the
    # error object as an extra field.
    assert raw.http_response.status_code == 200
    assert completion.choices is None
    assert completion.model_extra is not None
    assert completion.model_extra["error"]["type"] == "server_error"
    assert entries[0]["outcome"] == "error_in_200"
    assert entries[0]["status"] == 200
    assert entries[0]["completion_tokens"] == 0


def test_truncated_fault() -> None:
    with simulator_client(SimulatorSettings(truncated_rate=1.0)) as (client, _):
        completion = client.chat.completions.create(
            model="small-model",
            messages=document_messages(),
            response_format={"type": "json_object"},
        )

    choice = completion.choices[0]
    content = choice.message.content or ""
    assert choice.finish_reason == "length"
    assert content.startswith("{")
    with pytest.raises(json.JSONDecodeError):
        json.loads(content)
    assert completion.usage is not None
    assert completion.usage.completion_tokens == math.ceil(len(content) / 4)


def test_malformed_json_fault() -> None:
    with simulator_client(SimulatorSettings(malformed_json_rate=1.0)) as (client, _):
        completion = client.chat.completions.create(
            model="small-model", messages=ticket_messages()
        )

    choice = completion.choices[0]
    content = choice.message.content or ""
    assert choice.finish_reason == "stop"
    assert "{" in content
    with pytest.raises(json.JSONDecodeError):
        json.loads(content)


def test_schema_violation_fault() -> None:
    settings = SimulatorSettings(schema_violation_rate=1.0, fault_seed=2)
    with simulator_client(settings) as (client, _):
        outputs = [
            json.loads(
                client.chat.completions.create(model="small-model", messages=ticket_messages())
                .choices[0]
                .message.content
                or ""
            )
            for _ in range(12)
        ]

    missing = [output for output in outputs if set(output) < TICKET_KEYS]
    extra = [output for output in outputs if set(output) > TICKET_KEYS]
    wrong_type = [output for output in outputs if isinstance(output.get("category"), int)]
    assert missing
    assert extra
    assert wrong_type
    assert len(missing) + len(extra) + len(wrong_type) == 12


def test_slow_fault_responds_late() -> None:
    with simulator_client(SimulatorSettings(slow_rate=1.0, slow_ms=300)) as (client, url):
        started = time.monotonic()
        completion = client.chat.completions.create(
            model="small-model", messages=ticket_messages()
        )
        elapsed_s = time.monotonic() - started
        entries = requests_log(url)

    assert elapsed_s >= 0.3
    assert set(json.loads(completion.choices[0].message.content or "")) == TICKET_KEYS
    assert entries[0]["outcome"] == "slow"
    assert entries[0]["latency_ms"] >= 300


def test_stall_fault_times_out_client() -> None:
    settings = SimulatorSettings(stall_rate=1.0, stall_s=2)
    with simulator_client(settings, timeout_s=0.5) as (client, url):
        started = time.monotonic()
        with pytest.raises(openai.APITimeoutError):
            client.chat.completions.create(model="small-model", messages=ticket_messages())
        elapsed_s = time.monotonic() - started
        # The server notices the closed connection within its polling interval.
        deadline = time.monotonic() + 3
        entries = requests_log(url)
        while not entries and time.monotonic() < deadline:
            time.sleep(0.05)
            entries = requests_log(url)

    assert elapsed_s < 2
    assert entries[0]["outcome"] == "stall"
    assert entries[0]["client_disconnected"] is True
    assert entries[0]["latency_ms"] < 2000


def test_stall_responds_to_patient_client() -> None:
    settings = SimulatorSettings(stall_rate=1.0, stall_s=0.3)
    with simulator_client(settings) as (client, url):
        completion = client.chat.completions.create(
            model="small-model", messages=ticket_messages()
        )
        entries = requests_log(url)

    assert completion.choices[0].finish_reason == "stop"
    assert entries[0]["client_disconnected"] is False
    assert entries[0]["latency_ms"] >= 300


def test_fault_sequence_follows_seed() -> None:
    rates = {"server_error": 0.3, "malformed_json": 0.3}
    settings = SimulatorSettings(server_error_rate=0.3, malformed_json_rate=0.3, fault_seed=5)
    injector = FaultInjector(rates, seed=5)
    expected = [fault.kind if fault else "ok" for fault in (injector.draw() for _ in range(20))]

    with simulator_client(settings) as (client, url):
        for _ in range(20):
            with suppress(openai.APIStatusError):
                create_raw(client)
        outcomes = [entry["outcome"] for entry in requests_log(url)]

    assert outcomes == expected


def test_rate_limited_requests_draw_no_fault() -> None:
    settings = SimulatorSettings(rpm=60, server_error_rate=0.5, fault_seed=4)
    injector = FaultInjector({"server_error": 0.5}, seed=4)
    expected = [fault.kind if fault else "ok" for fault in (injector.draw() for _ in range(2))]

    with simulator_client(settings) as (client, url):
        for pause_s in (0.0, 0.0, 1.05):
            time.sleep(pause_s)
            with suppress(openai.APIStatusError):
                create_raw(client)
        outcomes = [entry["outcome"] for entry in requests_log(url)]

    assert outcomes == [expected[0], "rate_limited_requests", expected[1]]


def test_stats_count_outcomes_and_usage() -> None:
    with simulator_client(SimulatorSettings(rpm=60, tpm=100_000)) as (client, url):
        usage = create_raw(client).parse().usage
        for _ in range(2):
            with pytest.raises(openai.RateLimitError):
                create_raw(client)
        httpx.post(f"{url}/v1/chat/completions", json={"model": "small-model"})
        stats = httpx.get(f"{url}/_simulator/stats").json()
        cleared = httpx.delete(f"{url}/_simulator/stats").json()
        after = httpx.get(f"{url}/_simulator/stats").json()
        log_size = len(requests_log(url))

    assert stats["requests_total"] == 4
    assert stats["outcomes"] == {"ok": 1, "rate_limited_requests": 2, "invalid_request": 1}
    assert stats["limits"]["requests"]["limit_per_min"] == 60
    assert stats["limits"]["requests"]["capacity"] == 1.0
    assert stats["limits"]["requests"]["accepted"] == 1
    assert stats["limits"]["tokens"]["limit_per_min"] == 100_000
    assert stats["limits"]["tokens"]["accepted"] == usage.total_tokens
    assert stats["elapsed_s"] > 0
    assert cleared == {"cleared": 4}
    assert after["requests_total"] == 0
    assert after["outcomes"] == {}
    assert after["limits"]["tokens"]["accepted"] == 0
    assert log_size == 4


def test_stats_without_limits() -> None:
    with simulator_client(SimulatorSettings()) as (client, url):
        create_raw(client)
        stats = httpx.get(f"{url}/_simulator/stats").json()

    assert stats["limits"]["requests"]["limit_per_min"] is None
    assert stats["limits"]["requests"]["accepted"] == 1
    assert stats["limits"]["tokens"]["accepted"] > 0
