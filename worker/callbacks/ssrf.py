"""Server-side request forgery guard for callback URLs.

`vet_url` parses a URL, resolves its host once and rejects it if any resolved address is
internal (loopback, private, link-local, unique-local, multicast, reserved, unspecified,
or an IPv6 form that embeds such an IPv4 address). It returns the address to connect to.
The sender connects to that address and sends the name only as the Host header and TLS
server name, so a DNS answer that changes between the check and the connection (DNS
rebinding) cannot move the request to another address.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx

from worker.errors import SluiceError
from worker.settings import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# Same call shape as socket.getaddrinfo, which tests replace with a stub.
Resolver = Callable[..., list[tuple[Any, ...]]]

DEFAULT_PORTS = {"http": 80, "https": 443}
# IPv6 prefixes whose last 32 bits are an IPv4 address that the packet finally reaches.
NAT64_NETWORKS = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))
IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")


class BlockedURLError(SluiceError):
    """A callback URL the guard rejects; the message names the URL part and the reason.

    `permanent` is True when retrying cannot help (malformed URL, scheme not allowed).
    A resolution failure or an internal address may change with DNS, so it is False.
    """

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True)
class Policy:
    """Exceptions to the guard for development and tests: http, internal hosts and networks."""

    allow_http: bool = False
    hosts: frozenset[tuple[str, int | None]] = field(default_factory=frozenset)
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_entries(cls, entries: Iterable[str], *, allow_http: bool = False) -> Policy:
        """Build a policy from `host`, `host:port`, `[ipv6]:port` or CIDR entries."""
        hosts: set[tuple[str, int | None]] = set()
        networks: list[IPNetwork] = []
        for entry in entries:
            entry = entry.strip().lower()
            if "/" in entry:
                networks.append(ipaddress.ip_network(entry, strict=False))
            elif entry:
                hosts.add(_split_host_port(entry))
        return cls(allow_http=allow_http, hosts=frozenset(hosts), networks=tuple(networks))

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        return cls.from_entries(settings.callback_allow_hosts,
                                allow_http=settings.callback_allow_http)

    def host_allowed(self, host: str, port: int) -> bool:
        host = host.lower()
        return (host, None) in self.hosts or (host, port) in self.hosts

    def address_allowed(self, address: IPAddress) -> bool:
        return any(address.version == network.version and address in network
                   for network in self.networks)


@dataclass(frozen=True)
class VettedURL:
    """A URL that passed the guard, with the address the request must connect to."""

    url: httpx.URL
    address: IPAddress

    @property
    def host(self) -> str:
        return self.url.host

    def connect_url(self) -> httpx.URL:
        """Return the URL with its host replaced by the vetted address."""
        return self.url.copy_with(host=str(self.address))

    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.url.port is None else f"{host}:{self.url.port}"

    def extensions(self) -> dict[str, Any]:
        """Return httpx request extensions that verify TLS against the name, not the IP."""
        return {"sni_hostname": self.host} if self.url.scheme == "https" else {}


def _split_host_port(entry: str) -> tuple[str, int | None]:
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else None
    if entry.count(":") == 1:
        host, port = entry.split(":")
        return host, int(port)
    return entry, None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """Return the IPv4 address that an IPv6 mapped, translated or tunnel form carries."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if any(address in network for network in NAT64_NETWORKS):
        return ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in IPV4_COMPATIBLE and int(address) > 1:
        return ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
    return None


def blocked_reason(address: IPAddress) -> str | None:
    """Return why a callback must not connect to `address`, or None if it may."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            inner = blocked_reason(embedded)
            return None if inner is None else f"{inner} address embedded in IPv6"
    checks = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
        # Catches the rest of the special-purpose ranges, such as 100.64.0.0/10 (CGNAT).
        ("non-global", not address.is_global),
    )
    for name, matched in checks:
        if matched:
            return name
    return None


def _resolve(host: str, port: int, resolve: Resolver) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = resolve(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise BlockedURLError(f"callback host {host!r} could not be resolved: {exc}",
                              permanent=False) from exc
    addresses: list[IPAddress] = []
    for info in infos:
        # sockaddr[0] of an IPv6 answer may carry a zone ("fe80::1%eth0").
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise BlockedURLError(f"callback host {host!r} resolved to no address",
                              permanent=False)
    return addresses


def _parse(url: str | httpx.URL, policy: Policy) -> tuple[httpx.URL, int]:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise BlockedURLError(f"callback URL {str(url)!r} is invalid: {exc}",
                              permanent=True) from exc
    if parsed.scheme == "http" and not policy.allow_http:
        raise BlockedURLError(
            f"callback URL {parsed} uses http; use https (SLUICE_CALLBACK_ALLOW_HTTP=true "
            "allows http for development)", permanent=True)
    if parsed.scheme not in DEFAULT_PORTS:
        raise BlockedURLError(f"callback URL {parsed} must use https", permanent=True)
    if not parsed.host:
        raise BlockedURLError(f"callback URL {parsed} has no host", permanent=True)
    return parsed, parsed.port or DEFAULT_PORTS[parsed.scheme]


def vet_url(url: str | httpx.URL, policy: Policy,
            resolve: Resolver | None = None) -> VettedURL:
    """Check a callback URL and return it with the one address to connect to.

    Raise BlockedURLError if the scheme is not allowed or if any address the host
    resolves to is internal, unless the allowlist names the host or the address.
    """
    parsed, port = _parse(url, policy)
    # Looked up at call time so that a patched socket.getaddrinfo takes effect.
    addresses = _resolve(parsed.host, port, resolve or socket.getaddrinfo)
    if not policy.host_allowed(parsed.host, port):
        for address in addresses:
            reason = None if policy.address_allowed(address) else blocked_reason(address)
            if reason is not None:
                raise BlockedURLError(
                    f"callback host {parsed.host!r} resolves to {address}, a {reason} "
                    "address; callbacks only go to public addresses", permanent=False)
    return VettedURL(url=parsed, address=addresses[0])
