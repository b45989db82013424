"""The callback SSRF guard: which URLs it rejects and that requests go to the vetted address.

Names resolve through a patched `socket.getaddrinfo`, so no test sends traffic anywhere
but to a receiver it starts on 127.0.0.1.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from worker.callbacks.sender import Message, new_client, send
from worker.callbacks.ssrf import BlockedURLError, Policy, blocked_reason, vet_url

STRICT = Policy()


def fake_getaddrinfo(table: dict[str, list[str]]) -> Any:
    """Return a getaddrinfo stand-in that resolves names from `table` and records each lookup."""
    calls: list[str] = []

    def resolve(host: str, port: int, *args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        calls.append(host)
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM,
                 6, "", (address, port)) for address in table[host]]

    resolve.calls = calls  # type: ignore[attr-defined]
    return resolve


@pytest.mark.parametrize(("url", "reason"), [
    ("https://127.0.0.1/hook", "loopback"),
    ("https://127.8.9.10/hook", "loopback"),
    ("https://10.1.2.3/hook", "private"),
    ("https://172.16.0.1/hook", "private"),
    ("https://172.31.255.254/hook", "private"),
    ("https://192.168.1.1/hook", "private"),
    ("https://169.254.169.254/latest/meta-data/", "link-local"),
    ("https://0.0.0.0/hook", "unspecified"),
    ("https://224.0.0.1/hook", "multicast"),
    ("https://240.0.0.1/hook", "reserved"),
    ("https://100.64.0.1/hook", "non-global"),
    ("https://[::1]/hook", "loopback"),
    ("https://[::]/hook", "unspecified"),
    ("https://[fe80::1]/hook", "link-local"),
    ("https://[fc00::1]/hook", "private"),
    ("https://[fd12:3456::1]/hook", "private"),
    ("https://[ff02::1]/hook", "multicast"),
    ("https://[::ffff:127.0.0.1]/hook", "loopback address embedded in IPv6"),
    ("https://[::ffff:10.0.0.1]/hook", "private address embedded in IPv6"),
    ("https://[::ffff:169.254.169.254]/hook", "link-local address embedded in IPv6"),
    ("https://[64:ff9b::10.0.0.1]/hook", "private address embedded in IPv6"),
    ("https://[2002:c0a8:0101::1]/hook", "private address embedded in IPv6"),
])
def test_internal_literal_rejected(url: str, reason: str) -> None:
    with pytest.raises(BlockedURLError, match=f"a {reason} address") as raised:
        vet_url(url, STRICT, resolve=fake_getaddrinfo({}))

    assert raised.value.permanent is False


@pytest.mark.parametrize("address", ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c",
                                     "::ffff:93.184.215.14", "64:ff9b::93.184.215.14"])
def test_public_address_allowed(address: str) -> None:
    assert blocked_reason(ipaddress.ip_address(address)) is None


def test_name_resolving_to_private_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    resolver = fake_getaddrinfo({"hooks.example.com": ["192.168.10.20"]})
    monkeypatch.setattr(socket, "getaddrinfo", resolver)

    with pytest.raises(BlockedURLError, match=re.escape("192.168.10.20, a private address")):
        vet_url("https://hooks.example.com/results", STRICT)

    assert resolver.calls == ["hooks.example.com"]


def test_any_internal_answer_rejects_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo(
        {"hooks.example.com": ["93.184.215.14", "::ffff:10.0.0.1"]}))

    with pytest.raises(BlockedURLError, match="::ffff:a00:1"):
        vet_url("https://hooks.example.com/results", STRICT)


def test_public_name_pinned_to_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo(
        {"hooks.example.com": ["93.184.215.14"]}))

    vetted = vet_url("https://Hooks.Example.com:8443/results?x=1", STRICT)

    assert str(vetted.connect_url()) == "https://93.184.215.14:8443/results?x=1"
    assert vetted.host_header() == "hooks.example.com:8443"
    assert vetted.extensions() == {"sni_hostname": "hooks.example.com"}


def test_unresolvable_name_is_retryable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo({}))

    with pytest.raises(BlockedURLError, match="could not be resolved") as raised:
        vet_url("https://missing.example.com/", STRICT)

    assert raised.value.permanent is False


def test_http_rejected_by_default() -> None:
    with pytest.raises(BlockedURLError, match="uses http; use https") as raised:
        vet_url("http://93.184.215.14/hook", STRICT)

    assert raised.value.permanent is True


@pytest.mark.parametrize("url", ["ftp://93.184.215.14/hook", "https:///hook", "file:///etc/hosts"])
def test_other_schemes_and_no_host_rejected(url: str) -> None:
    with pytest.raises(BlockedURLError) as raised:
        vet_url(url, STRICT)

    assert raised.value.permanent is True


def test_allowlist_host_and_cidr() -> None:
    policy = Policy.from_entries(["127.0.0.1:8080", "localhost", "10.20.0.0/16"],
                                 allow_http=True)
    resolver = fake_getaddrinfo({"localhost": ["127.0.0.1"]})

    assert str(vet_url("http://127.0.0.1:8080/", policy, resolver).address) == "127.0.0.1"
    assert str(vet_url("http://localhost:9000/", policy, resolver).address) == "127.0.0.1"
    assert str(vet_url("http://10.20.3.4/", policy, resolver).address) == "10.20.3.4"
    with pytest.raises(BlockedURLError, match="loopback"):
        vet_url("http://127.0.0.1:8081/", policy, resolver)
    with pytest.raises(BlockedURLError, match="private"):
        vet_url("http://10.21.0.1/", policy, resolver)


def test_allowlist_ipv6_entry() -> None:
    policy = Policy.from_entries(["[::1]:8080"], allow_http=True)

    assert str(vet_url("http://[::1]:8080/", policy).address) == "::1"
    with pytest.raises(BlockedURLError, match="loopback"):
        vet_url("http://[::1]:8081/", policy)


# Delivery through a real receiver on 127.0.0.1 --------------------------------------------


class Receiver(ThreadingHTTPServer):
    """A loopback HTTP server that records requests and answers with a fixed status."""

    def __init__(self, status: int, location: str | None = None, port: int = 0) -> None:
        self.status = status
        self.location = location
        self.requests: list[dict[str, Any]] = []
        super().__init__(("127.0.0.1", port), ReceiverHandler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])


class ReceiverHandler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", "0"))
        self.server.requests.append({"path": self.path,
                                     "headers": {k.lower(): v for k, v in self.headers.items()},
                                     "body": self.rfile.read(length)})
        self.send_response(self.server.status)
        if self.server.location:
            self.send_header("Location", self.server.location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def serve(status: int, location: str | None = None, port: int = 0) -> Iterator[Receiver]:
    """Run a Receiver in a thread until the generator is closed."""
    server = Receiver(status, location, port)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def redirecting() -> Iterator[Receiver]:
    with serve(302, "http://10.0.0.1/steal") as server:
        yield server


@pytest.fixture
def accepting() -> Iterator[Receiver]:
    with serve(204) as server:
        yield server


class CountingTransport(httpx.HTTPTransport):
    """An httpx transport that records the URL of every request it sends."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.urls.append(str(request.url))
        return super().handle_request(request)


MESSAGE_PAYLOAD = {"type": "job.succeeded", "data": {"job_id": "1"}}


def test_redirect_to_private_not_followed(redirecting: Receiver) -> None:
    policy = Policy.from_entries([f"127.0.0.1:{redirecting.port}"], allow_http=True)
    transport = CountingTransport()
    message = Message("msg_1", f"http://127.0.0.1:{redirecting.port}/hook", MESSAGE_PAYLOAD)

    with new_client(2, transport) as client:
        result = send(client, message, [], policy)

    assert result.failure == "blocked"
    assert result.status_code == 302
    assert result.error is not None and "10.0.0.1, a private address" in result.error
    assert transport.urls == [f"http://127.0.0.1:{redirecting.port}/hook"]
    assert len(redirecting.requests) == 1


def test_redirect_loop_stops_after_three(accepting: Receiver) -> None:
    accepting.status = 307
    accepting.location = "/again"
    policy = Policy.from_entries([f"127.0.0.1:{accepting.port}"], allow_http=True)
    message = Message("msg_2", f"http://127.0.0.1:{accepting.port}/hook", MESSAGE_PAYLOAD)

    with new_client(2) as client:
        result = send(client, message, [], policy)

    assert result.failure == "redirect"
    assert len(accepting.requests) == 4
    assert [request["path"] for request in accepting.requests[1:]] == ["/again"] * 3


def test_connection_goes_to_vetted_address(accepting: Receiver,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    # The first lookup answers loopback (allowlisted), any later one a private address:
    # a rebinding attack would need the sender to resolve the name a second time.
    answers = iter([["127.0.0.1"]] + [["10.0.0.1"]] * 5)
    lookups: list[str] = []
    real_getaddrinfo = socket.getaddrinfo

    def rebinding(host: str, port: int, *args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        # The socket layer looks up numeric hosts too; those must resolve to themselves.
        if host.replace(".", "").isdigit():
            return real_getaddrinfo(host, port, *args, **kwargs)
        lookups.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))
                for address in next(answers)]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    policy = Policy.from_entries(["127.0.0.0/8"], allow_http=True)
    transport = CountingTransport()
    message = Message("msg_3", f"http://receiver.test:{accepting.port}/hook", MESSAGE_PAYLOAD)

    with new_client(2, transport) as client:
        result = send(client, message, [], policy)

    assert result.ok
    assert lookups == ["receiver.test"]
    assert transport.urls == [f"http://127.0.0.1:{accepting.port}/hook"]
    assert accepting.requests[0]["headers"]["host"] == f"receiver.test:{accepting.port}"
