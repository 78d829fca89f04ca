"""Where an outbound request may go: a stranger's URL parsed and checked, its host resolved."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from ipaddress import ip_address
from typing import Final, NamedTuple

import httpx

from vidgate.errors import FetchFailed, excerpt
from vidgate.media.addresses import IPAddress

__all__ = [
    "DEFAULT_PORTS",
    "Destination",
    "Resolver",
    "parse_url",
    "redirect_target",
    "system_resolver",
]

Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]

DEFAULT_PORTS: Final = {"http": 80, "https": 443}


class Destination(NamedTuple):
    """A URL whose address has been checked, and the address the connection must go to."""

    url: httpx.URL
    ip: IPAddress

    @property
    def port(self) -> int:
        return self.url.port or DEFAULT_PORTS[self.url.scheme]

    @property
    def pinned_url(self) -> httpx.URL:
        """The URL with its host replaced by the checked address, so nothing resolves it again."""
        try:
            return self.url.copy_with(host=str(self.ip))
        except httpx.InvalidURL as exc:  # an IPv6 zone id ("fe80::1%eth0") has no URL form
            raise FetchFailed(f"resolves to {self.ip}, which cannot be connected to") from exc


async def system_resolver(host: str, port: int) -> list[IPAddress]:
    """Every address ``getaddrinfo`` gives for host, in its order of preference, deduplicated."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    addresses: list[IPAddress] = []
    for *_, sockaddr in infos:
        address = ip_address(sockaddr[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


def parse_url(url: str | httpx.URL, schemes: tuple[str, ...]) -> httpx.URL:
    """The URL parsed, or FetchFailed saying what about it this server does not accept."""
    try:
        parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
    except httpx.InvalidURL as exc:
        # httpx's reason is a sentence, but it may quote a part of the URL at any length.
        raise FetchFailed(f"is not a valid URL ({excerpt(str(exc))})") from None
    accepted = " and ".join(schemes)
    if not parsed.scheme:
        raise FetchFailed(f"is not an absolute URL; only {accepted} URLs are accepted")
    if parsed.scheme not in schemes:
        raise FetchFailed(
            f"uses the {excerpt(parsed.scheme)} scheme; only {accepted} URLs are accepted"
        )
    if not parsed.raw_host:
        raise FetchFailed("has no host name")
    if parsed.userinfo:
        raise FetchFailed("contains a user name or password, which this server does not send")
    if parsed.port is not None and not 0 < parsed.port < 65536:
        raise FetchFailed(f"has port {parsed.port}, which is not a valid port")
    return parsed


def redirect_target(current: httpx.URL, response: httpx.Response) -> httpx.URL:
    """Where a redirect answer points, resolved against the URL that gave it (not yet checked)."""
    location = response.headers.get("Location")
    if not location:
        raise FetchFailed(f"answered HTTP {response.status_code} without a Location header")
    try:
        return current.join(location)
    except httpx.InvalidURL:
        raise FetchFailed(f"redirects to an invalid URL ('{excerpt(location)}')") from None
