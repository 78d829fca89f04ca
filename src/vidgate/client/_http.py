"""What the sync and async clients share: options, headers, and when and how long to retry."""

from __future__ import annotations

import enum
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
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
    VidgateError,
)
from vidgate.client.retry import RetryPolicy, header_retry_after
from vidgate.client.types import Task

M = TypeVar("M", bound=BaseModel)

DEFAULT_BASE_URL: Final = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT: Final = 60.0


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
    """Reads, cancels, uploads, keyed creates: connection errors and the policy's statuses."""
    KEYED_CREATE = "keyed_create"
    """As SAFE, and 409 ``idempotency_conflict`` (the first send is still being handled)."""


@dataclass(frozen=True)
class Options:
    """The resolved constructor arguments of a client."""

    api_key: str
    base_url: str
    timeout: float
    retry: RetryPolicy
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def resolve(
        cls,
        api_key: str | None,
        base_url: str | None,
        timeout: float,
        max_retries: int | None,
        retry_policy: RetryPolicy | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Options:
        """``max_retries``, when given, overrides the policy's (default: ``RetryPolicy()``)."""
        env = os.environ if environ is None else environ
        key = api_key or env.get("VIDGATE_API_KEY")
        if not key:
            raise VidgateError(
                "No API key: pass api_key=... or set VIDGATE_API_KEY.", code="missing_api_key"
            )
        url = (base_url or env.get("VIDGATE_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        policy = retry_policy or RetryPolicy()
        if max_retries is not None:
            if max_retries < 0:
                raise VidgateError("max_retries must be 0 or more.")
            policy = replace(policy, max_retries=max_retries)
        if policy.max_retries is None:
            # tasks.wait counts failed polls against it: an SDK call must end.
            raise VidgateError("The SDK's retry policy needs a max_retries.")
        headers = {
            "Authorization": f"Bearer {key}",
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
        }
        return cls(key, url, timeout, policy, headers)

    @property
    def max_retries(self) -> int:
        return self.retry.max_retries or 0  # never None: resolve() refuses that

    def url(self, path_or_url: str) -> str:
        if "://" in path_or_url:
            return path_or_url
        return self.base_url + "/" + path_or_url.lstrip("/")


def retryable(policy: RetryPolicy, rule: Retry, error: VidgateError) -> bool:
    """Whether ``error`` (no answer, or an error status) may be followed by another send."""
    if rule is Retry.NEVER:
        return False
    if isinstance(error, APIConnectionError):
        return True
    if error.status_code is not None and policy.retryable_status(error.status_code):
        return True
    return rule is Retry.KEYED_CREATE and error.code == "idempotency_conflict"


def retry_pause(
    policy: RetryPolicy, rule: Retry, attempt: int, error: VidgateError
) -> float | None:
    """The pause before resending after try number ``attempt`` (from 0) failed with ``error``;
    None when it is not to be resent."""
    if not retryable(policy, rule, error):
        return None
    return policy.delay(attempt, header_retry_after(error.headers))


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
        data = source
        name = filename
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
