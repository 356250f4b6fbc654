"""Where webhooks may be sent. In production: `https` only, and never to a
loopback, private, link-local (cloud metadata among them), multicast, reserved or
otherwise non-public address. Checked when the URL is given (a literal address)
and again on the addresses its host resolves to whenever a delivery opens a
connection, so a name that later points inside the network is refused then.
Outside production, loopback addresses and `http` are allowed too, so tests and
newcomers can use a local receiver.

The connection goes to an address that was checked: the host is looked up once,
by the HTTP client's own network backend (CheckedBackend), which connects to the
addresses of that answer only. A second lookup (DNS rebinding: a short-lived answer
that passes the check, then one pointing inside) never happens."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Iterable
from urllib.parse import urlsplit

import httpcore
import httpx

from app.config import Environment

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeUrl(ValueError):
    pass


# IPv6 that carries an IPv4 address a gateway may reach: NAT64 (RFC 6052, 8215)
NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))
GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")


def _unwrap(address: Address) -> Address:
    """The IPv4 address inside an IPv6 one that embeds it (mapped, 6to4, NAT64)."""
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped or address.sixtofour
        if mapped is not None:
            return mapped
        if any(address in network for network in NAT64):
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def check_address(address: Address, env: Environment) -> None:
    inner = _unwrap(address)
    if inner.is_loopback and env is not Environment.production:
        return
    if not inner.is_global or inner.is_multicast:
        raise UnsafeUrl(f"{address} is not a public address")
    # beyond what is_global knows: only global unicast IPv6 (no IPv4-compatible,
    # IPv4-translated or site-local forms)
    if inner is address and isinstance(address, ipaddress.IPv6Address) and address not in GLOBAL_UNICAST:
        raise UnsafeUrl(f"{address} is not a public address")


def check_url(url: str, env: Environment) -> str:
    """The URL as given if it may receive webhooks (as far as can be told without
    resolving its host); UnsafeUrl otherwise."""
    try:
        parts = urlsplit(url)
        hostname, _ = parts.hostname, parts.port  # either raises on a malformed host or port
    except ValueError as exc:
        raise UnsafeUrl(f"not a valid URL: {exc}") from None
    allowed = ("https",) if env is Environment.production else ("https", "http")
    if parts.scheme not in allowed:
        raise UnsafeUrl(f"the scheme must be {' or '.join(allowed)}")
    if not hostname:
        raise UnsafeUrl("the URL names no host")
    try:  # a host no resolver or HTTP client would take (an empty or 64-character label...)
        hostname.encode("idna")
        httpx.URL(url)
    except (UnicodeError, httpx.InvalidURL) as exc:
        raise UnsafeUrl(f"not a valid host: {exc}") from None
    if parts.username or parts.password:
        raise UnsafeUrl("credentials in the URL are refused; authenticate with the signature")
    if parts.fragment:
        raise UnsafeUrl("a URL with a #fragment is refused")
    try:
        literal = ipaddress.ip_address(hostname)
    except ValueError:
        if env is Environment.production and hostname.rstrip(".").lower().endswith("localhost"):
            raise UnsafeUrl("localhost is not a public address") from None
        return url
    check_address(literal, env)
    return url


async def resolve(host: str, port: int, env: Environment) -> list[Address]:
    """At delivery: the addresses `host` resolves to, in the resolver's order, if
    every one is allowed; UnsafeUrl otherwise."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise UnsafeUrl(f"{host} does not resolve: {exc}") from None
    addresses: list[Address] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        check_address(address, env)
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise UnsafeUrl(f"{host} resolves to no address")
    return addresses


class CheckedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, but a connection resolves its host once, checks
    every address (resolve()) and connects to those addresses only: first to last,
    the next when one refuses. The URL keeps its host, so the Host header, TLS SNI
    and certificate verification use it as usual (httpcore hands the origin's host
    to the TLS handshake), and the pool keeps connections apart by host: one made
    and verified for a host never carries another host's request, even where both
    resolve to one address (which a pool keyed by address, as sending to the IP in
    the URL would make it, would allow)."""

    def __init__(self, env: Environment) -> None:
        self.env = env
        self.network = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109  # httpcore's signature
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        failure: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
        for address in await resolve(host, port, self.env):
            try:
                # a literal address: anyio connects to it without resolving anything
                return await self.network.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None  # resolve() answers at least one address
        raise failure

    async def sleep(self, seconds: float) -> None:
        await self.network.sleep(seconds)


class CheckedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport over a connection pool whose connections go through
    CheckedBackend. httpx takes no network backend: its pool is built again with
    one (`handle_async_request` sends through `self._pool`; the rebinding test in
    tests/webhooks fails if that ever stops being so)."""

    def __init__(self, env: Environment, limits: httpx.Limits, verify: ssl.SSLContext | bool = True) -> None:
        super().__init__(verify=verify, trust_env=False, limits=limits)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify, trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=CheckedBackend(env),
        )
