"""The HTTP client that connects only to a checked address, and its failures in a client's words."""

from __future__ import annotations

import http.cookiejar
import logging
import ssl
from collections.abc import Mapping
from pathlib import Path

import certifi
import httpx

from vidgate.errors import FetchFailed
from vidgate.media.addresses import parse_ip_literal
from vidgate.media.destination import Destination

__all__ = ["PinnedClient", "transport_failure"]

logger = logging.getLogger(__name__)


class PinnedClient:
    """Sends each request to a ``Destination``'s checked address, under the URL's own name.

    It never follows a redirect, reads proxy settings, keeps a cookie or inflates a body: each
    of those would let a request go somewhere, or grow into something, that was not checked.
    """

    def __init__(self, *, ca_bundle: Path | None, user_agent: str) -> None:
        self._client = httpx.AsyncClient(
            verify=_ssl_context(ca_bundle),
            trust_env=False,  # proxy variables would send the request somewhere unchecked
            follow_redirects=False,  # each hop must be checked; the policy follows them itself
            # A jar keyed on IP literals would hand one site's cookies to another on the same IP.
            cookies=http.cookiejar.CookieJar(
                http.cookiejar.DefaultCookiePolicy(allowed_domains=[])
            ),
            headers={"User-Agent": user_agent},
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def open(
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
            raise transport_failure(exc, destination, io_timeout) from exc


def _ssl_context(ca_bundle: Path | None) -> ssl.SSLContext:
    """The system store, certifi's, and the operator's extra CA file when there is one."""
    context = ssl.create_default_context()
    context.load_verify_locations(cafile=certifi.where())
    if ca_bundle is not None:
        context.load_verify_locations(cafile=str(ca_bundle))
    return context


def transport_failure(
    exc: httpx.HTTPError, destination: Destination, timeout: float
) -> FetchFailed:
    """What went wrong on the wire, said for the client who supplied the URL."""
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
