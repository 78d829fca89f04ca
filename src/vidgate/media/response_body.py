"""Reading a stranger's answer within a cap: raw bytes counted as they arrive, never inflated."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from vidgate.errors import FetchFailed, RequestTooLarge
from vidgate.media.destination import Destination
from vidgate.media.pinned_client import transport_failure

__all__ = [
    "FetchedBody",
    "describe_size",
    "read_raw",
    "refuse_encoded_or_oversized",
    "with_raw_body",
]

# Headers that describe the body as the server sent it; the copy with_raw_body makes holds the
# raw (possibly truncated) bytes instead.
_BODY_FRAMING_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})


@dataclass(frozen=True, slots=True)
class FetchedBody:
    """The bytes a fetch returned, the URL they came from after redirects, and their type."""

    content: bytes
    url: httpx.URL
    content_type: str | None


def refuse_encoded_or_oversized(response: httpx.Response, max_bytes: int) -> None:
    """Refuse, before reading, a body that is compressed or declared larger than max_bytes."""
    encoding = response.headers.get("Content-Encoding", "").strip().lower()
    if encoding not in ("", "identity"):
        raise FetchFailed(
            f"was sent with Content-Encoding {encoding} although only identity was accepted"
        )
    declared = response.headers.get("Content-Length", "").strip()
    if declared.isdigit() and int(declared) > max_bytes:
        raise RequestTooLarge(
            f"is {describe_size(int(declared))}, over the {describe_size(max_bytes)} limit"
        )


async def read_raw(
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
        raise transport_failure(exc, destination, io_timeout) from exc
    return b"".join(chunks), True


def with_raw_body(response: httpx.Response, content: bytes) -> httpx.Response:
    """A closed-off copy of response holding content, without the headers that framed the
    original body (its encoding and length no longer describe these bytes)."""
    kept_headers = [
        (name, value)
        for name, value in response.headers.multi_items()
        if name.lower() not in _BODY_FRAMING_HEADERS
    ]
    return httpx.Response(
        response.status_code, headers=kept_headers, content=content, request=response.request
    )


def describe_size(count: int) -> str:
    """A byte count for a person: '10 MB', '11.2 MB', '512 KB', '300 bytes'."""
    for unit, factor in (("MB", 1024 * 1024), ("KB", 1024)):
        if count >= factor:
            return f"{count / factor:.1f}".removesuffix(".0") + f" {unit}"
    return f"{count} bytes"
