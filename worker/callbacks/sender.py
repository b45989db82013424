"""One HTTP delivery of a signed callback, through the SSRF guard at every hop."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import httpx

from worker.callbacks.ssrf import BlockedURLError, Policy, Resolver, vet_url
from worker.signing import signature_header

MAX_REDIRECTS = 3
USER_AGENT = "Sluice-Webhooks/1"


@dataclass(frozen=True)
class Message:
    """A callback as sent: stable id, target and JSON payload."""

    webhook_id: str
    target_url: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class SendResult:
    """Result of one delivery attempt; `failure` is None on a 2xx response."""

    status_code: int | None
    failure: str | None = None
    error: str | None = None
    permanent: bool = False

    @property
    def ok(self) -> bool:
        return self.failure is None


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def headers_for(message: Message, body: bytes, secrets: list[str],
                timestamp: int | None = None) -> dict[str, str]:
    """Return the Standard Webhooks headers; without secrets there is no signature."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": message.webhook_id,
        "webhook-timestamp": str(timestamp),
    }
    if secrets:
        headers["webhook-signature"] = signature_header(
            secrets, message.webhook_id, timestamp, body)
    return headers


def new_client(timeout_s: float, transport: httpx.BaseTransport | None = None) -> httpx.Client:
    """Return a client that never follows redirects or uses proxies from the environment.

    A proxy would resolve the host itself and so defeat the address pinning.
    """
    return httpx.Client(timeout=timeout_s, follow_redirects=False, trust_env=False,
                        transport=transport)


def send(client: httpx.Client, message: Message, secrets: list[str], policy: Policy,
         resolve: Resolver | None = None) -> SendResult:
    """POST the callback; follow up to MAX_REDIRECTS redirects, each vetted again.

    Every redirect repeats the POST with the same body and headers, whatever the 3xx
    status, because a callback turned into a GET would carry no result.
    """
    body = encode(message.payload)
    headers = headers_for(message, body, secrets)
    url: httpx.URL | str = message.target_url
    status: int | None = None
    for _hop in range(MAX_REDIRECTS + 1):
        try:
            vetted = vet_url(url, policy, resolve)
        except BlockedURLError as exc:
            return SendResult(status, "blocked", str(exc), permanent=exc.permanent)
        try:
            response = _post(client, vetted.connect_url(), body,
                             {**headers, "host": vetted.host_header()}, vetted.extensions())
        except httpx.TimeoutException as exc:
            return SendResult(None, "timeout", f"timed out: {type(exc).__name__}")
        except httpx.TransportError as exc:
            return SendResult(None, "connection", f"{type(exc).__name__}: {exc}")
        status = response.status_code
        if response.is_success:
            return SendResult(status)
        location = response.headers.get("location")
        if not response.is_redirect or not location:
            return _not_delivered(status, location)
        try:
            url = vetted.url.join(location)
        except httpx.InvalidURL:
            return SendResult(status, "redirect", f"HTTP {status} with an invalid Location "
                                                  f"{location[:200]!r}")
    return SendResult(status, "redirect", f"more than {MAX_REDIRECTS} redirects")


def _post(client: httpx.Client, url: httpx.URL, body: bytes, headers: dict[str, str],
          extensions: dict[str, Any]) -> httpx.Response:
    request = client.build_request("POST", url, content=body, headers=headers,
                                   extensions=extensions)
    # Only the status matters, so the response body is never read.
    response = client.send(request, stream=True)
    response.close()
    return response


def _not_delivered(status: int, location: str | None) -> SendResult:
    if 300 <= status < 400 and not location:
        return SendResult(status, "redirect", f"HTTP {status} without a Location header")
    return SendResult(status, "status", f"HTTP {status}")
