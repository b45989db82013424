"""Drive the provider simulator over real HTTP on 127.0.0.1 with the openai SDK."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import openai
import pytest
import uvicorn
from openai import OpenAI

from worker.simulator import SimulatorSettings, create_app

TICKET_SYSTEM = """You classify customer support tickets.
Workflow: ticket_classification
Allowed categories: BILLING, SHIPPING, ACCOUNT
Allowed intents: request_refund, track_package, reset_password
Answer with one JSON object."""

TICKET_SYSTEM_FREE_INTENT = """You classify customer support tickets.
Workflow: ticket_classification
Allowed categories: BILLING, SHIPPING, ACCOUNT
Answer with one JSON object."""

TICKET_USER = """Classify this ticket.
<ticket>
Where is my parcel? The package was due last week and the tracking page shows nothing.
</ticket>"""

DOCUMENT_SYSTEM = """You extract fields from invoices.
Workflow: document_extraction
Answer with one JSON object."""

INVOICE_TEXT = """\
                                              Brightwater Supplies Ltd.
                                              12 Harbour Road, Leeds

Invoice Number:    BW-20931
Invoice Date:      14/03/2024
Due Date:          13/04/2024

Description                          Qty        Unit price        Amount
Espresso beans 1kg                     3            £12.50        £37.50
Paper cups, pack of 100                2             £4.25         £8.50

                                                 Subtotal         £46.00
                                                 VAT 20%           £9.20
                                                 Total            £55.20
"""

DOCUMENT_USER = f"Extract the fields.\n<document>\n{INVOICE_TEXT}</document>"

TICKET_SCHEMA: Any = {
    "type": "json_schema",
    "json_schema": {
        "name": "ticket_classification",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {
                "category": {"type": "string"},
                "intent": {"type": "string"},
                "priority": {"type": "string"},
                "language": {"type": "string"},
                "summary": {"type": "string"},
            },
            "required": ["category", "intent", "priority", "language", "summary"],
            "additionalProperties": False,
        },
    },
}

DOCUMENT_SCHEMA: Any = {
    "type": "json_schema",
    "json_schema": {
        "name": "document_extraction",
        "strict": True,
        "schema": {"type": "object", "properties": {}, "additionalProperties": True},
    },
}

JSON_OBJECT: Any = {"type": "json_object"}


@contextmanager
def run_simulator(settings: SimulatorSettings | None = None) -> Iterator[str]:
    """Serve a simulator app from a background thread and yield its base URL."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    config = uvicorn.Config(create_app(settings), log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("simulator did not start within 10 s")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        listener.close()


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    with run_simulator() as url:
        yield url


@pytest.fixture
def client(server_url: str) -> Iterator[OpenAI]:
    with OpenAI(base_url=f"{server_url}/v1", api_key="x", max_retries=0) as sdk_client:
        yield sdk_client


def ticket_messages(system: str = TICKET_SYSTEM) -> list[Any]:
    return [{"role": "system", "content": system}, {"role": "user", "content": TICKET_USER}]


def document_messages() -> list[Any]:
    return [
        {"role": "system", "content": DOCUMENT_SYSTEM},
        {"role": "user", "content": DOCUMENT_USER},
    ]


def test_ticket_with_json_schema(client: OpenAI) -> None:
    completion = client.chat.completions.create(
        model="small-model",
        messages=ticket_messages(),
        response_format=TICKET_SCHEMA,
    )

    assert completion.object == "chat.completion"
    assert completion.model == "small-model"
    assert completion.id.startswith("chatcmpl-")
    choice = completion.choices[0]
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    output = json.loads(choice.message.content or "")
    assert output["category"] == "SHIPPING"
    assert output["intent"] == "track_package"
    assert output["priority"] == "normal"
    assert output["language"] == "en"
    assert output["summary"] == "Where is my parcel?"


def test_ticket_with_json_object_and_free_intent(client: OpenAI) -> None:
    completion = client.chat.completions.create(
        model="small-model",
        messages=ticket_messages(TICKET_SYSTEM_FREE_INTENT),
        response_format={"type": "json_object"},
    )

    output = json.loads(completion.choices[0].message.content or "")
    assert output["category"] == "SHIPPING"
    assert output["intent"] == "track_delivery"
    assert set(output) == {"category", "intent", "priority", "language", "summary"}


def test_usage_is_estimated_from_characters(client: OpenAI) -> None:
    completion = client.chat.completions.create(
        model="small-model", messages=ticket_messages(), response_format={"type": "json_object"}
    )

    usage = completion.usage
    assert usage is not None
    expected_prompt = sum(-(-len(text) // 4) + 4 for text in (TICKET_SYSTEM, TICKET_USER))
    content = completion.choices[0].message.content or ""
    assert usage.prompt_tokens == expected_prompt
    assert usage.completion_tokens == -(-len(content) // 4)
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 0


@pytest.mark.parametrize("response_format", [DOCUMENT_SCHEMA, JSON_OBJECT])
def test_document_extraction(client: OpenAI, response_format: Any) -> None:
    completion = client.chat.completions.create(
        model="small-model", messages=document_messages(), response_format=response_format
    )

    output = json.loads(completion.choices[0].message.content or "")
    assert output["issuer"] == "Brightwater Supplies Ltd."
    assert output["document_number"] == "BW-20931"
    assert output["issue_date"] == "2024-03-14"
    assert output["currency"] == "GBP"
    assert output["total"] == "55.20"
    assert output["tax"] == "9.20"
    assert [item["amount"] for item in output["line_items"]] == ["37.50", "8.50"]
    assert output["line_items"][0]["quantity"] == "3"
    assert output["line_items"][0]["unit_price"] == "12.50"


def test_repair_turn_repeats_answer(client: OpenAI) -> None:
    first = client.chat.completions.create(
        model="small-model", messages=ticket_messages(), response_format={"type": "json_object"}
    )
    first_content = first.choices[0].message.content or ""
    repair = [
        *ticket_messages(),
        {"role": "assistant", "content": first_content},
        {"role": "user", "content": "Your answer had errors:\n- intent: not allowed"},
    ]

    second = client.chat.completions.create(
        model="small-model", messages=repair, response_format={"type": "json_object"}
    )

    assert second.choices[0].message.content == first_content


def test_output_token_limit_cuts_content(client: OpenAI) -> None:
    completion = client.chat.completions.create(
        model="small-model",
        messages=document_messages(),
        response_format={"type": "json_object"},
        max_completion_tokens=5,
    )

    choice = completion.choices[0]
    assert choice.finish_reason == "length"
    assert len(choice.message.content or "") == 20
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 5


def test_empty_messages_rejected(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="small-model", messages=[])

    assert caught.value.status_code == 400
    error = caught.value.response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == "messages"
    assert error["code"] is None


def test_missing_messages_rejected(server_url: str) -> None:
    response = httpx.post(f"{server_url}/v1/chat/completions", json={"model": "small-model"})

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == "messages"
    assert "messages" in error["message"]


def test_malformed_json_rejected(server_url: str) -> None:
    response = httpx.post(
        f"{server_url}/v1/chat/completions",
        content=b'{"model": "small-model", "messages": [',
        headers={"content-type": "application/json"},
    )

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"].startswith("request body is not valid JSON")
    assert error["param"] is None


def test_prompt_without_workflow_rejected(client: OpenAI) -> None:
    messages: list[Any] = [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "<ticket>hello</ticket>"},
    ]

    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="small-model", messages=messages)

    assert "Workflow:" in caught.value.response.json()["error"]["message"]


def test_stream_rejected(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="small-model", messages=ticket_messages(), stream=True)

    assert caught.value.response.json()["error"]["param"] == "stream"


def test_models_and_health(client: OpenAI, server_url: str) -> None:
    models = client.models.list()
    health = httpx.get(f"{server_url}/healthz")

    assert [model.id for model in models.data] == ["sluice-standin"]
    assert health.status_code == 200
    assert health.json() == {"status": "ok"}


def test_request_log_records_and_clears(client: OpenAI, server_url: str) -> None:
    httpx.delete(f"{server_url}/_simulator/requests")
    client.chat.completions.create(model="log-model", messages=ticket_messages())
    httpx.post(f"{server_url}/v1/chat/completions", json={"model": "log-model"})

    entries = httpx.get(f"{server_url}/_simulator/requests").json()
    cleared = httpx.delete(f"{server_url}/_simulator/requests").json()
    after = httpx.get(f"{server_url}/_simulator/requests").json()

    assert [entry["outcome"] for entry in entries] == ["ok", "invalid_request"]
    assert [entry["status"] for entry in entries] == [200, 400]
    assert all(entry["model"] == "log-model" for entry in entries)
    assert entries[0]["prompt_tokens"] > 0
    assert entries[0]["completion_tokens"] > 0
    assert entries[1]["prompt_tokens"] == 0
    assert entries[0]["time"] <= entries[1]["time"]
    assert cleared == {"cleared": 2}
    assert after == []


def test_settings_limit_models_and_add_latency() -> None:
    settings = SimulatorSettings(latency_ms=200, models=["small-model"])
    with (
        run_simulator(settings) as url,
        OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0) as sdk_client,
    ):
        started = time.monotonic()
        sdk_client.chat.completions.create(model="small-model", messages=ticket_messages())
        elapsed = time.monotonic() - started
        with pytest.raises(openai.NotFoundError) as caught:
            sdk_client.chat.completions.create(model="other-model", messages=ticket_messages())
        listed = [model.id for model in sdk_client.models.list().data]

    assert elapsed >= 0.2
    assert caught.value.response.json()["error"]["code"] == "model_not_found"
    assert listed == ["small-model"]
