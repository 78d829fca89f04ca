"""The vidgate Python SDK: ``Client`` and ``AsyncClient`` for vidgate and evolink's own API.

Needs only httpx and pydantic: nothing here imports the server (the server imports
``vidgate.client.retry``, the retry policy everything in vidgate shares).

    from vidgate.client import Client

    with Client() as client:  # VIDGATE_API_KEY, VIDGATE_BASE_URL
        task = client.videos.generate("A cat playing piano")
        task = client.tasks.wait(task.id, on_progress=lambda t: print(t.status, t.progress))
        if task.succeeded:
            client.download(task, "cat.mp4")
"""

from __future__ import annotations

from vidgate.client._async import AsyncClient
from vidgate.client._http import NOT_GIVEN, USER_AGENT
from vidgate.client._sync import Client
from vidgate.client.errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InsufficientQuotaError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RequestTooLargeError,
    ServiceUnavailableError,
    UnprocessableEntityError,
    VidgateError,
    WaitTimeout,
    WebhookVerificationError,
)
from vidgate.client.retry import RetryPolicy
from vidgate.client.types import Credits, Task, TaskError, TaskPage, UploadedFile
from vidgate.client.webhooks import verify_webhook

__all__ = [
    "NOT_GIVEN",
    "USER_AGENT",
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncClient",
    "AuthenticationError",
    "BadRequestError",
    "Client",
    "ConflictError",
    "Credits",
    "InsufficientQuotaError",
    "InternalServerError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "RequestTooLargeError",
    "RetryPolicy",
    "ServiceUnavailableError",
    "Task",
    "TaskError",
    "TaskPage",
    "UnprocessableEntityError",
    "UploadedFile",
    "VidgateError",
    "WaitTimeout",
    "WebhookVerificationError",
    "verify_webhook",
]
