"""Outbound HTTP to URLs that strangers supply: check the address, connect only to it, cap it."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from ipaddress import IPv6Address
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx

from vidgate.errors import FetchFailed, RequestTooLarge, excerpt
from vidgate.media.addresses import IPAddress, address_refusal, describe_refusal, parse_ip_literal
from vidgate.media.destination import (
    DEFAULT_PORTS,
    Destination,
    Resolver,
    parse_url,
    redirect_target,
    system_resolver,
)
from vidgate.media.pinned_client import PinnedClient
from vidgate.media.response_body import (
    FetchedBody,
    describe_size,
    read_raw,
    refuse_encoded_or_oversized,
    with_raw_body,
)

__all__ = ["EgressPolicy"]

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


class EgressPolicy:
    """Decides which URLs the server may reach and makes the requests to them.

    Every hostname is resolved once per request and every address checked; the connection then
    goes to the checked address itself, so DNS cannot be rebound between check and connect.
    ``allow`` holds operator-approved (host, port) pairs that skip the address check.
    """

    def __init__(
        self,
        allow: frozenset[tuple[str, int]] = frozenset(),
        *,
        ca_bundle: Path | None = None,
        resolver: Resolver | None = None,
        resolve_timeout: float = 10.0,
        user_agent: str = "vidgate",
    ) -> None:
        self._allow = allow
        self._resolver = resolver or system_resolver
        self._resolve_timeout = resolve_timeout
        self._client = PinnedClient(ca_bundle=ca_bundle, user_agent=user_agent)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def resolve_checked(
        self, url: str | httpx.URL, *, schemes: tuple[str, ...] = ("http", "https")
    ) -> Destination:
        """Parse and check url, resolve its host, and refuse if any address is refused."""
        parsed = parse_url(url, schemes)
        host = parsed.raw_host.decode("ascii")
        port = parsed.port or DEFAULT_PORTS[parsed.scheme]
        literal = parse_ip_literal(host)
        addresses = [literal] if literal is not None else await self._resolve(host, port)
        if (host, port) not in self._allow:
            # Any refused address refuses the URL: the resolver's order is not ours to trust.
            # An address the operator allowed (with this port) passes whatever name led to it.
            for address in addresses:
                reason = address_refusal(address)
                if reason is not None and (str(address), port) not in self._allow:
                    raise FetchFailed(_refusal_message(host, literal, addresses, address, reason))
        chosen = addresses[0]
        if isinstance(chosen, IPv6Address) and chosen.ipv4_mapped is not None:
            chosen = chosen.ipv4_mapped
        return Destination(parsed, chosen)

    async def fetch(
        self,
        url: str | httpx.URL,
        *,
        max_bytes: int,
        timeout: float = 15.0,  # noqa: ASYNC109 - a whole-fetch deadline, kept with asyncio.timeout
        max_redirects: int = 3,
        accept: str = "image/*",
    ) -> FetchedBody:
        """GET url, following at most max_redirects checked redirects, within timeout seconds.

        The timeout is a deadline for the whole fetch (lookups, every hop and the body), so a
        server that drips bytes cannot hold a request open. Raises FetchFailed or
        RequestTooLarge.
        """
        try:
            async with asyncio.timeout(timeout):
                return await self._fetch(url, max_bytes, timeout, max_redirects, accept)
        except TimeoutError:
            raise FetchFailed(f"did not finish downloading within {timeout:g} s") from None

    async def post_json(
        self,
        url: str | httpx.URL,
        body: bytes,
        headers: Mapping[str, str],
        timeout: float,  # noqa: ASYNC109 - a whole-attempt deadline, kept with asyncio.timeout
        *,
        max_response_bytes: int = 64 * 1024,
    ) -> httpx.Response:
        """POST a JSON body to an https URL, once, within timeout seconds in all.

        Redirects are not followed: a 3xx comes back like any other answer. The response body is
        read up to max_response_bytes (raw, not decoded) and the connection closed. Raises
        FetchFailed when the URL is refused or no answer arrives in time.
        """
        try:
            async with asyncio.timeout(timeout):
                destination = await self.resolve_checked(url, schemes=("https",))
                request_headers = {"Content-Type": "application/json", **headers}
                response = await self._client.open(
                    "POST", destination, request_headers, body, timeout
                )
                try:
                    content, _complete = await read_raw(
                        response, max_response_bytes, destination, timeout
                    )
                finally:
                    await response.aclose()
        except TimeoutError:
            raise FetchFailed(f"did not answer within {timeout:g} s") from None
        return with_raw_body(response, content)

    async def _fetch(
        self,
        url: str | httpx.URL,
        max_bytes: int,
        io_timeout: float,
        max_redirects: int,
        accept: str,
    ) -> FetchedBody:
        current = parse_url(url, ("http", "https"))
        for hop in range(max_redirects + 1):
            try:
                destination = await self.resolve_checked(current)
            except FetchFailed as exc:
                if hop == 0:
                    raise
                raise FetchFailed(
                    f"redirects to {excerpt(str(current))}, which {exc.message}"
                ) from None
            response = await self._client.open(
                "GET", destination, {"Accept": accept}, None, io_timeout
            )
            try:
                if response.status_code in _REDIRECT_STATUSES:
                    current = redirect_target(current, response)
                    continue
                if not response.is_success:
                    where = f" (at {excerpt(str(current))}, after redirects)" if hop else ""
                    raise FetchFailed(f"answered HTTP {response.status_code}{where}")
                refuse_encoded_or_oversized(response, max_bytes)
                content, complete = await read_raw(response, max_bytes, destination, io_timeout)
                if not complete:
                    raise RequestTooLarge(f"is over the {describe_size(max_bytes)} limit")
                return FetchedBody(content, current, response.headers.get("Content-Type"))
            finally:
                await response.aclose()
        raise FetchFailed(f"redirects more than {max_redirects} times (too many redirects)")

    async def _resolve(self, host: str, port: int) -> list[IPAddress]:
        try:
            # resolve_checked is also called alone (the callback check): give it its own bound.
            async with asyncio.timeout(self._resolve_timeout):
                addresses = await self._resolver(host, port)
        except TimeoutError:
            raise FetchFailed(
                f"could not be resolved ({excerpt(host)}: no answer within "
                f"{self._resolve_timeout:g} s)"
            ) from None
        except UnicodeError:  # the IDNA codec's own wording names its internals
            raise FetchFailed(
                f"could not be resolved ({excerpt(host)} is not a valid host name)"
            ) from None
        except OSError as exc:
            detail = exc.strerror or "the lookup failed"
            raise FetchFailed(f"could not be resolved ({excerpt(host)}: {detail})") from None
        if not addresses:
            raise FetchFailed(f"could not be resolved ({excerpt(host)} has no address)")
        return addresses


def _refusal_message(
    host: str,
    literal: IPAddress | None,
    addresses: list[IPAddress],
    refused: IPAddress,
    reason: str,
) -> str:
    tail = f"{describe_refusal(reason)}, which this server does not connect to"
    if literal is not None:
        written = "" if str(literal) == host else f" (written {host})"
        return f"points at {refused}{written}, {tail}"
    if len(addresses) == 1:
        return f"resolves to {refused}, {tail}"
    listed = ", ".join(str(address) for address in addresses)
    return f"resolves to {listed}; {refused} is {tail}"
