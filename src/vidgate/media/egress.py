"""Outbound HTTP to URLs that strangers supply: check the address, connect only to it, cap it."""

from __future__ import annotations

import asyncio
import http.cookiejar
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from ipaddress import IPv6Address, ip_address
from pathlib import Path
from types import TracebackType
from typing import NamedTuple, Self

import certifi
import httpx

from vidgate.errors import FetchFailed, RequestTooLarge, excerpt
from vidgate.media.addresses import IPAddress, address_refusal, describe_refusal, parse_ip_literal

__all__ = ["Destination", "EgressPolicy", "FetchedBody", "Resolver", "system_resolver"]

logger = logging.getLogger(__name__)

Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]

_DEFAULT_PORTS = {"http": 80, "https": 443}
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Headers that describe the body as the server sent it; the copy post_json returns holds the
# raw (possibly truncated) bytes instead.
_BODY_FRAMING_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})


class Destination(NamedTuple):
    """A URL whose address has been checked, and the address the connection must go to."""

    url: httpx.URL
    ip: IPAddress

    @property
    def port(self) -> int:
        return self.url.port or _DEFAULT_PORTS[self.url.scheme]

    @property
    def pinned_url(self) -> httpx.URL:
        """The URL with its host replaced by the checked address, so nothing resolves it again."""
        try:
            return self.url.copy_with(host=str(self.ip))
        except httpx.InvalidURL as exc:  # an IPv6 zone id ("fe80::1%eth0") has no URL form
            raise FetchFailed(f"resolves to {self.ip}, which cannot be connected to") from exc


@dataclass(frozen=True, slots=True)
class FetchedBody:
    """The bytes a fetch returned, the URL they came from after redirects, and their type."""

    content: bytes
    url: httpx.URL
    content_type: str | None


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
        self._client = httpx.AsyncClient(
            verify=_ssl_context(ca_bundle),
            trust_env=False,  # proxy variables would send the request somewhere unchecked
            follow_redirects=False,  # each hop must be checked; fetch() follows them itself
            # A jar keyed on IP literals would hand one site's cookies to another on the same IP.
            cookies=http.cookiejar.CookieJar(
                http.cookiejar.DefaultCookiePolicy(allowed_domains=[])
            ),
            headers={"User-Agent": user_agent},
        )

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
        parsed = _parse_url(url, schemes)
        host = parsed.raw_host.decode("ascii")
        port = parsed.port or _DEFAULT_PORTS[parsed.scheme]
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
                response = await self._open("POST", destination, request_headers, body, timeout)
                try:
                    content, _complete = await _read_raw(
                        response, max_response_bytes, destination, timeout
                    )
                finally:
                    await response.aclose()
        except TimeoutError:
            raise FetchFailed(f"did not answer within {timeout:g} s") from None
        kept_headers = [
            (name, value)
            for name, value in response.headers.multi_items()
            if name.lower() not in _BODY_FRAMING_HEADERS
        ]
        return httpx.Response(
            response.status_code, headers=kept_headers, content=content, request=response.request
        )

    async def _fetch(
        self,
        url: str | httpx.URL,
        max_bytes: int,
        io_timeout: float,
        max_redirects: int,
        accept: str,
    ) -> FetchedBody:
        current = _parse_url(url, ("http", "https"))
        for hop in range(max_redirects + 1):
            try:
                destination = await self.resolve_checked(current)
            except FetchFailed as exc:
                if hop == 0:
                    raise
                raise FetchFailed(
                    f"redirects to {excerpt(str(current))}, which {exc.message}"
                ) from None
            response = await self._open("GET", destination, {"Accept": accept}, None, io_timeout)
            try:
                if response.status_code in _REDIRECT_STATUSES:
                    current = _redirect_target(current, response)
                    continue
                if not response.is_success:
                    where = f" (at {excerpt(str(current))}, after redirects)" if hop else ""
                    raise FetchFailed(f"answered HTTP {response.status_code}{where}")
                _refuse_encoded_or_oversized(response, max_bytes)
                content, complete = await _read_raw(response, max_bytes, destination, io_timeout)
                if not complete:
                    raise RequestTooLarge(f"is over the {_size(max_bytes)} limit")
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

    async def _open(
        self,
        method: str,
        destination: Destination,
        headers: Mapping[str, str],
        content: bytes | None,
        io_timeout: float,
    ) -> httpx.Response:
        """Send one request to the checked address and return the response, body unread."""
        url = destination.url
        host = url.raw_host.decode("ascii")
        # Set after the caller's headers so that none of them can replace these.
        request_headers = httpx.Headers(headers)
        request_headers["Host"] = url.netloc.decode("ascii")
        # httpx would inflate gzip transparently: a small body could become gigabytes.
        request_headers["Accept-Encoding"] = "identity"
        extensions: dict[str, object] = {}
        if url.scheme == "https":
            # The pool is keyed on the IP literal: a kept-alive connection verified for a.test
            # could be handed to a request for b.test on the same address. TLS connections are
            # therefore never reused; plain http ones are, as Host travels with each request.
            request_headers["Connection"] = "close"
            if parse_ip_literal(host) is None:
                # httpcore uses this as server_hostname: the SNI sent and the name the
                # certificate is verified against.
                extensions["sni_hostname"] = host
        request = self._client.build_request(
            method,
            destination.pinned_url,
            headers=request_headers,
            content=content,
            timeout=io_timeout,
            extensions=extensions,
        )
        logger.debug("%s to %s via %s", method, url.host, destination.ip)
        try:
            return await self._client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise _transport_failure(exc, destination, io_timeout) from exc


def _ssl_context(ca_bundle: Path | None) -> ssl.SSLContext:
    """The system store, certifi's, and the operator's extra CA file when there is one."""
    context = ssl.create_default_context()
    context.load_verify_locations(cafile=certifi.where())
    if ca_bundle is not None:
        context.load_verify_locations(cafile=str(ca_bundle))
    return context


def _parse_url(url: str | httpx.URL, schemes: tuple[str, ...]) -> httpx.URL:
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


def _redirect_target(current: httpx.URL, response: httpx.Response) -> httpx.URL:
    location = response.headers.get("Location")
    if not location:
        raise FetchFailed(f"answered HTTP {response.status_code} without a Location header")
    try:
        return current.join(location)
    except httpx.InvalidURL:
        raise FetchFailed(f"redirects to an invalid URL ('{excerpt(location)}')") from None


def _refuse_encoded_or_oversized(response: httpx.Response, max_bytes: int) -> None:
    encoding = response.headers.get("Content-Encoding", "").strip().lower()
    if encoding not in ("", "identity"):
        raise FetchFailed(
            f"was sent with Content-Encoding {encoding} although only identity was accepted"
        )
    declared = response.headers.get("Content-Length", "").strip()
    if declared.isdigit() and int(declared) > max_bytes:
        raise RequestTooLarge(f"is {_size(int(declared))}, over the {_size(max_bytes)} limit")


async def _read_raw(
    response: httpx.Response, limit: int, destination: Destination, io_timeout: float
) -> tuple[bytes, bool]:
    """Up to limit raw bytes of the body, and whether that was all of it.

    Raw bytes are counted as they arrive and reading stops at the first byte past the limit.
    """
    chunks: list[bytes] = []
    received = 0
    try:
        async for chunk in response.aiter_raw():
            if received + len(chunk) > limit:
                chunks.append(chunk[: limit - received])
                return b"".join(chunks), False
            received += len(chunk)
            chunks.append(chunk)
    except httpx.HTTPError as exc:
        raise _transport_failure(exc, destination, io_timeout) from exc
    return b"".join(chunks), True


def _transport_failure(
    exc: httpx.HTTPError, destination: Destination, timeout: float
) -> FetchFailed:
    if isinstance(exc, httpx.TimeoutException):
        return FetchFailed(f"did not answer within {timeout:g} s")
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, ssl.SSLError):
        cause = cause.__cause__ or cause.__context__
    if isinstance(cause, ssl.SSLCertVerificationError):
        return FetchFailed(f"failed the TLS check ({cause.verify_message})")
    if isinstance(cause, ssl.SSLError):
        # OpenSSL's reason is a constant's name (WRONG_VERSION_NUMBER): say it in words.
        reason = (cause.reason or "").replace("_", " ").lower() or "no reason given"
        return FetchFailed(f"failed the TLS handshake ({reason})")
    if isinstance(exc, httpx.ConnectError):
        where = f"{destination.ip} port {destination.port}"
        return FetchFailed(
            f"could not be reached (connecting to {where} failed: {_os_reason(exc)})"
        )
    # httpx's own wording ("peer closed connection without sending complete message body:
    # incomplete chunked read") and class names are not for a client.
    if isinstance(exc, httpx.RemoteProtocolError):
        return FetchFailed("did not answer with valid HTTP, or closed the connection early")
    return FetchFailed("broke off the connection before its answer was complete")


def _os_reason(exc: BaseException) -> str:
    """The operating system's words for a failed connection ("Connection refused")."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror
        cause = cause.__cause__ or cause.__context__
    return "no connection could be made"


def _size(count: int) -> str:
    """A byte count for a person: '10 MB', '11.2 MB', '512 KB', '300 bytes'."""
    for unit, factor in (("MB", 1024 * 1024), ("KB", 1024)):
        if count >= factor:
            return f"{count / factor:.1f}".removesuffix(".0") + f" {unit}"
    return f"{count} bytes"
