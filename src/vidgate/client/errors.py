"""The SDK's one exception tree, and how an HTTP error answer becomes one of its classes.

    VidgateError                      anything the SDK raises (a missing API key, too)
    ├── APIConnectionError            no answer: refused, reset, DNS, TLS...
    │   └── APITimeoutError           no answer in time
    ├── APIStatusError                the server answered with an error status
    │   ├── BadRequestError           400 (``param`` names the field at fault)
    │   ├── AuthenticationError       401
    │   ├── InsufficientQuotaError    402
    │   ├── PermissionDeniedError     403
    │   ├── NotFoundError             404
    │   ├── ConflictError             409
    │   ├── RequestTooLargeError      413
    │   ├── UnprocessableEntityError  422 (an Idempotency-Key reused with another body)
    │   ├── RateLimitError            429 (``retry_after``)
    │   ├── InternalServerError       500 and other 5xx
    │   └── ServiceUnavailableError   503 (``retry_after``)
    ├── WaitTimeout                   ``tasks.wait`` ran out of time (``task``: the last seen)
    └── WebhookVerificationError      a callback whose signature or timestamp does not hold

Every error carries ``code``, ``message``, ``param``, ``type``, ``status_code`` and ``headers``
as the server's envelope ``{"error": {"code", "message", "type", "param"}}`` gave them.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import httpx

from vidgate.client.retry import header_retry_after

if TYPE_CHECKING:
    from vidgate.client.types import Task


class VidgateError(Exception):
    """Something went wrong."""

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        type: str | None = None,
        status_code: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.param = param
        self.type = type
        self.status_code = status_code
        self.headers: dict[str, str] = dict(headers or {})
        self.attempts = 1  # how many times the request was sent before this error

    def __str__(self) -> str:
        parts = [self.message]
        if self.status_code is not None or self.code is not None:
            where = " ".join(str(p) for p in (self.status_code, self.code) if p is not None)
            parts.insert(0, f"[{where}]")
        if self.param:
            parts.append(f"(param: {self.param})")
        return " ".join(parts)


class APIConnectionError(VidgateError):
    """The server could not be reached, or the connection broke before an answer."""


class APITimeoutError(APIConnectionError):
    """The server did not answer in time."""


class APIStatusError(VidgateError):
    """The server answered with an error status."""


class BadRequestError(APIStatusError):
    pass


class AuthenticationError(APIStatusError):
    pass


class InsufficientQuotaError(APIStatusError):
    pass


class PermissionDeniedError(APIStatusError):
    pass


class NotFoundError(APIStatusError):
    pass


class ConflictError(APIStatusError):
    pass


class RequestTooLargeError(APIStatusError):
    pass


class UnprocessableEntityError(APIStatusError):
    pass


class _RetryAfter(APIStatusError):
    @property
    def retry_after(self) -> float | None:
        """Seconds the server asked to wait (its ``Retry-After``), if it said."""
        return header_retry_after(self.headers)


class RateLimitError(_RetryAfter):
    pass


class InternalServerError(APIStatusError):
    pass


class ServiceUnavailableError(_RetryAfter):
    pass


class WaitTimeout(VidgateError):
    """The task did not finish within the time given to ``tasks.wait``."""

    def __init__(self, message: str, *, task: Task | None = None) -> None:
        super().__init__(message, code="wait_timeout")
        self.task = task


class WebhookVerificationError(VidgateError):
    """The callback is not signed by the expected secret, or is too old or too new."""


STATUS_ERRORS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    402: InsufficientQuotaError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: RequestTooLargeError,
    422: UnprocessableEntityError,
    429: RateLimitError,
    500: InternalServerError,
    503: ServiceUnavailableError,
}


def _envelope(content: bytes) -> dict[str, Any] | None:
    with contextlib.suppress(ValueError):
        body = json.loads(content)
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            error: dict[str, Any] = body["error"]
            return error
    return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def error_from_response(response: httpx.Response) -> APIStatusError:
    """The exception for an error answer: the class by status, the fields from its envelope."""
    status = response.status_code
    cls = STATUS_ERRORS.get(status) or (InternalServerError if status >= 500 else APIStatusError)
    error = _envelope(response.content) or {}
    message = _text(error.get("message"))
    if message is None:
        snippet = response.text.strip()[:200] if response.content else ""
        message = f"HTTP {status} {response.reason_phrase}" + (f": {snippet}" if snippet else "")
    return cls(
        message,
        code=_text(error.get("code")),
        param=_text(error.get("param")),
        type=_text(error.get("type")),
        status_code=status,
        headers=dict(response.headers),
    )
