"""What the sync and async clients share: options, headers, and when and how long to retry."""

from __future__ import annotations

import enum
import os
import random
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Final, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from vidgate.client.errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    NotFoundError,
    RateLimitError,
    ServiceUnavailableError,
    VidgateError,
    parse_retry_after,
)
from vidgate.client.types import Task

M = TypeVar("M", bound=BaseModel)

DEFAULT_BASE_URL: Final = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT: Final = 60.0
DEFAULT_MAX_RETRIES: Final = 3
# Backoff: 0.5 s, 1 s, 2 s, 4 s, 8 s..., each shortened by up to a quarter at random (jitter).
INITIAL_BACKOFF: Final = 0.5
MAX_BACKOFF: Final = 8.0
JITTER: Final = 0.25
# A server asking for a longer pause than this gets the error back instead of a silent hang.
MAX_RETRY_AFTER: Final = 60.0
RETRY_STATUSES: Final = frozenset({408, 429, 502, 503, 504})


def _version() -> str:
    try:
        return metadata.version("vidgate")
    except metadata.PackageNotFoundError:
        return "0.0.0"


USER_AGENT: Final = f"vidgate-python/{_version()}"


class Retry(enum.Enum):
    """Which failures a request may be sent again after."""

    NEVER = "never"
    """A create without an Idempotency-Key: a second send could make a second task."""
    SAFE = "safe"
    """Reads, cancels, uploads, keyed creates: connection errors and 408/429/502/503/504."""
    KEYED_CREATE = "keyed_create"
    """As SAFE, and 409 ``idempotency_conflict`` (the first send is still being handled)."""


@dataclass(frozen=True)
class Options:
    """The resolved constructor arguments of a client."""

    api_key: str
    base_url: str
    timeout: float
    max_retries: int
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def resolve(
        cls,
        api_key: str | None,
        base_url: str | None,
        timeout: float,
        max_retries: int,
        environ: Mapping[str, str] | None = None,
    ) -> Options:
        env = os.environ if environ is None else environ
        key = api_key or env.get("VIDGATE_API_KEY")
        if not key:
            raise VidgateError(
                "No API key: pass api_key=... or set VIDGATE_API_KEY.", code="missing_api_key"
            )
        url = (base_url or env.get("VIDGATE_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        if max_retries < 0:
            raise VidgateError("max_retries must be 0 or more.")
        headers = {
            "Authorization": f"Bearer {key}",
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
        }
        return cls(key, url, timeout, max_retries, headers)

    def url(self, path_or_url: str) -> str:
        if "://" in path_or_url:
            return path_or_url
        return self.base_url + "/" + path_or_url.lstrip("/")


def backoff(attempt: int, rand: Callable[[], float] = random.random) -> float:
    """Seconds before retry number ``attempt + 1``: exponential, capped, jittered downwards."""
    base: float = min(INITIAL_BACKOFF * 2.0**attempt, MAX_BACKOFF)
    return base * (1 - JITTER * rand())


def retry_delay(attempt: int, headers: Mapping[str, str] | None = None) -> float | None:
    """The pause before the next try: the server's ``Retry-After`` when it gave one (None when
    it asks for more than MAX_RETRY_AFTER: then the caller gets the error), else backoff."""
    after = parse_retry_after(headers) if headers is not None else None
    if after is None:
        return backoff(attempt)
    return after if after <= MAX_RETRY_AFTER else None


def status_retryable(rule: Retry, error: APIStatusError) -> bool:
    if rule is Retry.NEVER:
        return False
    if error.status_code in RETRY_STATUSES:
        return True
    return rule is Retry.KEYED_CREATE and error.code == "idempotency_conflict"


def connection_error(exc: httpx.TransportError) -> APIConnectionError:
    if isinstance(exc, httpx.TimeoutException):
        return APITimeoutError(f"The server did not answer in time ({type(exc).__name__}).")
    return APIConnectionError(f"Could not talk to the server: {type(exc).__name__}: {exc}")


def drop_none(values: Mapping[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in values.items() if value is not None}


IMAGE_SIGNATURES: Final = (
    (b"\x89PNG\r\n\x1a\n", "image/png", ".png"),
    (b"\xff\xd8\xff", "image/jpeg", ".jpg"),
)


def sniff_image(data: bytes) -> tuple[str, str]:
    """(content type, suffix) of a PNG, JPEG or WebP by its first bytes; a neutral pair else."""
    for magic, content_type, suffix in IMAGE_SIGNATURES:
        if data.startswith(magic):
            return content_type, suffix
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp", ".webp"
    return "application/octet-stream", ""


def upload_parts(
    source: str | os.PathLike[str] | bytes, filename: str | None
) -> tuple[str, bytes, str]:
    """(file name, content, content type) for the multipart ``file`` field of ``/v1/files``.

    The file is read once, so a retried upload sends the same bytes (images are at most
    10 MB)."""
    if isinstance(source, bytes):
        data, name = source, filename
    else:
        with open(source, "rb") as handle:  # noqa: PTH123 - str or PathLike alike
            data = handle.read()
        name = filename or os.path.basename(os.fspath(source))  # noqa: PTH119
    content_type, suffix = sniff_image(data)
    return name or f"image{suffix}", data, content_type


class NotGiven:
    """The default of ``idempotency_key``: a fresh uuid4 (pass None or False for no key)."""

    def __repr__(self) -> str:
        return "NOT_GIVEN"


NOT_GIVEN: Final = NotGiven()


def generation_body(
    prompt: str,
    *,
    model: str,
    image_urls: list[str],
    aspect_ratio: str | None,
    callback_url: str | None,
    extra: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The create body; ``extra`` adds fields the SDK has no argument for (never overrides)."""
    return {
        **(extra or {}),
        **drop_none(
            {
                "model": model,
                "prompt": prompt,
                "aspect_ratio": aspect_ratio,
                "image_urls": image_urls or None,
                "callback_url": callback_url,
            }
        ),
    }


def idempotency_header(key: str | bool | NotGiven | None) -> dict[str, str]:
    if isinstance(key, NotGiven) or key is True:
        return {"Idempotency-Key": str(uuid.uuid4())}
    if not key:
        return {}
    return {"Idempotency-Key": key}


def parse(model: type[M], response: httpx.Response) -> M:
    """The answer as ``model``; a VidgateError when it is not one (a wrong base URL...)."""
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        raise VidgateError(
            f"The server's answer to {response.request.method} {response.request.url.path} "
            f"is not what the API returns ({exc.error_count()} problem(s)): is the base URL "
            "right?",
            code="invalid_response",
            status_code=response.status_code,
            headers=dict(response.headers),
        ) from exc


def task_path(task_id: str, suffix: str = "") -> str:
    return f"/v1/tasks/{quote(task_id, safe='')}{suffix}"


WAIT_TRANSIENT: Final = (APIConnectionError, RateLimitError, ServiceUnavailableError)


def wait_transient(error: VidgateError) -> bool:
    """A poll failure ``tasks.wait`` rides out (after the request's own retries)."""
    return isinstance(error, WAIT_TRANSIENT) or error.status_code in RETRY_STATUSES


def upload_missing(error: APIStatusError) -> APIStatusError:
    """A server with no ``POST /v1/files`` (evolink's own): say so instead of a bare 404."""
    if error.status_code not in (404, 405):
        return error
    missing = NotFoundError(
        "This server has no upload endpoint (POST /v1/files is a vidgate extra): pass public "
        "image URLs in image_urls instead.",
        code=error.code or "not_found",
        status_code=error.status_code,
        headers=error.headers,
    )
    missing.attempts = error.attempts
    return missing


def missing_video(task: Task) -> VidgateError:
    return VidgateError(
        f"Task {task.id} has no video (status {task.status!r}"
        + (f", error {task.error.code}" if task.error else "")
        + ").",
        code="no_video",
    )
