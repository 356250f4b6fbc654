"""Where webhooks may be sent. In production: `https` only, and never to a
loopback, private, link-local (cloud metadata among them), multicast, reserved or
otherwise non-public address. Checked when the URL is given (a literal address)
and again on the addresses its host resolves to at each delivery, so a name that
later points inside the network is refused then. Outside production, loopback
addresses and `http` are allowed too, so tests and newcomers can use a local
receiver."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

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


async def check_resolved(url: str, env: Environment) -> None:
    """At delivery: every address the host resolves to must be allowed."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise UnsafeUrl(f"{host} does not resolve: {exc}") from None
    for info in infos:
        check_address(ipaddress.ip_address(str(info[4][0]).split("%")[0]), env)
