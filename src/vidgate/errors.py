"""The one error tree of vidgate; each class knows its HTTP status, code and type.

Services raise these; ``api.errors`` renders every one of them as the error envelope of
SPEC.md §5. The class docstring is the default message.

    VidgateError
    ├── InvalidRequest            400 invalid_request
    │   ├── InvalidTaskId         400 invalid_task_id
    │   └── FetchFailed           400 invalid_request  (an image or URL could not be used)
    ├── Unauthorized              401 unauthorized
    ├── InsufficientCredits       402 insufficient_quota
    ├── ModelAccessDenied         403 model_access_denied
    ├── Forbidden                 403 forbidden
    ├── NotFound                  404 not_found
    │   ├── TaskNotFound          404 task_not_found
    │   └── ModelNotFound         404 model_not_found
    ├── MethodNotAllowed          405 method_not_allowed
    ├── Conflict                  409 conflict
    │   ├── TaskNotCancellable    409 task_not_cancellable
    │   ├── IdempotencyConflict   409 idempotency_conflict
    │   └── StaleAttempt          409 stale_attempt  (a remote worker's attempt was superseded)
    ├── IdempotencyMismatch       422 idempotency_key_reused
    ├── RequestTooLarge           413 request_too_large
    ├── RateLimited               429 rate_limit_exceeded
    ├── InternalError             500 internal_error
    └── ServiceUnavailable        503 service_unavailable
"""

from __future__ import annotations

from typing import ClassVar


class VidgateError(Exception):
    """Something went wrong."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    type: ClassVar[str] = "api_error"

    def __init__(
        self,
        message: str | None = None,
        *,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.message = message or (self.__doc__ or self.code).strip()
        self.param = param
        self.headers = headers or {}
        super().__init__(self.message)

    def with_param(self, param: str, message: str | None = None) -> VidgateError:
        """The same error, blamed on ``param``, optionally with a new message."""
        return type(self)(message or self.message, param=param, headers=self.headers)


class InvalidRequest(VidgateError):
    """The request is not valid."""

    status = 400
    code = "invalid_request"
    type = "invalid_request_error"


class InvalidTaskId(InvalidRequest):
    """Task ids start with 'task-unified-'."""

    code = "invalid_task_id"


class FetchFailed(InvalidRequest):
    """The URL could not be fetched."""


class Unauthorized(VidgateError):
    """A valid API key is required: send 'Authorization: Bearer <key>'."""

    status = 401
    code = "unauthorized"
    type = "authentication_error"


class InsufficientCredits(VidgateError):
    """The account does not have enough credits for this request."""

    status = 402
    code = "insufficient_quota"
    type = "insufficient_quota"


class ModelAccessDenied(VidgateError):
    """This key may not use that model."""

    status = 403
    code = "model_access_denied"
    type = "invalid_request_error"


class Forbidden(VidgateError):
    """The link is invalid or has expired."""

    status = 403
    code = "forbidden"
    type = "permission_error"


class NotFound(VidgateError):
    """Not found."""

    status = 404
    code = "not_found"
    type = "invalid_request_error"


class TaskNotFound(NotFound):
    """No such task."""

    code = "task_not_found"


class ModelNotFound(NotFound):
    """No such model."""

    code = "model_not_found"


class MethodNotAllowed(VidgateError):
    """This method is not allowed on this path."""

    status = 405
    code = "method_not_allowed"
    type = "invalid_request_error"


class Conflict(VidgateError):
    """The request conflicts with the current state of the resource."""

    status = 409
    code = "conflict"
    type = "invalid_request_error"


class TaskNotCancellable(Conflict):
    """The task has finished; it can no longer be cancelled."""

    code = "task_not_cancellable"


class IdempotencyConflict(Conflict):
    """A request with this Idempotency-Key is still being processed; retry shortly."""

    code = "idempotency_conflict"


class StaleAttempt(Conflict):
    """This attempt no longer holds the task: it was handed to another worker, or ended."""

    code = "stale_attempt"


class IdempotencyMismatch(VidgateError):
    """This Idempotency-Key was used with a different request body."""

    status = 422
    code = "idempotency_key_reused"
    type = "invalid_request_error"


class RequestTooLarge(VidgateError):
    """The request or a file it names is too large."""

    status = 413
    code = "request_too_large"
    type = "request_too_large_error"


class RateLimited(VidgateError):
    """Too many requests; slow down."""

    status = 429
    code = "rate_limit_exceeded"
    type = "rate_limit_error"


class InternalError(VidgateError):
    """The server failed to handle the request."""


class ServiceUnavailable(VidgateError):
    """The service is temporarily unavailable; try again shortly."""

    status = 503
    code = "service_unavailable"
    type = "service_unavailable_error"


def excerpt(text: str, limit: int = 100) -> str:
    """``text`` as an error message may quote it: at most ``limit`` characters (then its
    length), with control characters and lone surrogates escaped (``\\x00``, ``\\ud800``):
    a message is one line of text that encodes as UTF-8."""
    cut = text[:limit]
    if not cut.isprintable():
        cut = "".join(
            char if char.isprintable() else char.encode("unicode_escape").decode("ascii")
            for char in cut
        )
    return cut if len(text) <= limit else f"{cut}… ({len(text)} characters)"
