"""The Gemini API's long-running video calls: payload models, retries, failures and downloads."""

from __future__ import annotations

import asyncio
import logging
import random
import re
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Final, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from vidgate.client.retry import RetryPolicy, header_retry_after
from vidgate.engines.base import EngineFailure, EngineRefused, GenerationCancelled, TaskErrorCode
from vidgate.engines.cancellation import sleep_unless_cancelled

logger = logging.getLogger(__name__)

T = TypeVar("T")

MAX_VIDEO_BYTES: Final = 1 << 30
MAX_REDIRECTS: Final = 5
MAX_BACKOFF: Final = 30.0
# A longer Retry-After is shortened to this, not given up on: the task's own deadline is the limit.
MAX_RETRY_AFTER: Final = 60.0
_OPERATION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-/]*")
# Errors raised before a request left this machine: retrying them cannot start a second job.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)

# google.rpc.Code of a failed operation -> the SPEC.md task error code.
OPERATION_ERRORS: Final[dict[int, TaskErrorCode]] = {
    1: "service_error",  # CANCELLED: stopped on the provider's side, not by our user
    2: "unknown_error",  # UNKNOWN
    3: "invalid_parameters",  # INVALID_ARGUMENT
    4: "generation_timeout",  # DEADLINE_EXCEEDED
    5: "service_error",  # NOT_FOUND
    7: "service_error",  # PERMISSION_DENIED: the key or project, the operator's to fix
    8: "resource_exhausted",  # RESOURCE_EXHAUSTED: quota
    9: "service_error",  # FAILED_PRECONDITION: e.g. the project's region is not served
    11: "invalid_parameters",  # OUT_OF_RANGE
    12: "service_error",  # UNIMPLEMENTED
    13: "service_error",  # INTERNAL
    14: "service_unavailable",  # UNAVAILABLE
    16: "service_error",  # UNAUTHENTICATED
}


class _MaybeStarted(EngineFailure):
    """The start request may have reached Google: a job may exist, so no failover."""


class _Wire(BaseModel):
    """Gemini's JSON is camelCase; unknown fields are ignored so API additions do not break us."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class InlineImage(_Wire):
    bytes_base64_encoded: str
    mime_type: str


class Instance(_Wire):
    prompt: str
    image: InlineImage | None = None
    last_frame: InlineImage | None = None


class Parameters(_Wire):
    aspect_ratio: str
    resolution: str = "720p"
    duration_seconds: int = 8


class PredictRequest(_Wire):
    instances: list[Instance]
    parameters: Parameters


class Status(_Wire):
    code: int = 2
    message: str = ""
    status: str = ""


class Video(_Wire):
    uri: str | None = None


class Sample(_Wire):
    video: Video | None = None


class GenerateVideoResponse(_Wire):
    generated_samples: list[Sample] = Field(default_factory=list)
    rai_media_filtered_count: int = 0
    rai_media_filtered_reasons: list[str] = Field(default_factory=list)


class OperationResponse(_Wire):
    generate_video_response: GenerateVideoResponse | None = None


class Operation(_Wire):
    name: str = ""
    done: bool = False
    error: Status | None = None
    response: OperationResponse | None = None


class _ErrorBody(_Wire):
    error: Status


class _Retry(Exception):
    """A transient failure: worth another attempt, after ``retry_after`` if the server said."""

    def __init__(self, failure: EngineFailure, retry_after: float | None = None) -> None:
        super().__init__(failure.message)
        self.failure = failure
        self.retry_after = retry_after


def operation_failure(error: Status) -> EngineFailure:
    code = OPERATION_ERRORS.get(error.code, "unknown_error")
    detail = f"operation error {error.code} {error.status}: {error.message}".strip()
    return EngineFailure(
        code, f"Veo failed: {error.message or error.status or error.code}", detail=detail
    )


class GeminiClient:
    """Calls the Gemini API with the key in a header, retrying what is transient.

    Timeouts, connection errors and the shared policy's upstream statuses (408, 425, 429, 500,
    502-504) are retried ``max_retries`` times with backoff from ``backoff`` seconds up to
    MAX_BACKOFF, or after the server's ``Retry-After`` (up to MAX_RETRY_AFTER); anything else
    fails at once. The key goes only to the base URL's origin, and is never put in a message or
    a log line.
    """

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str,
        timeout: float,
        max_retries: int,
        backoff: float,
        transport: httpx.AsyncBaseTransport | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._key = api_key
        self.base_url = httpx.URL(base_url.rstrip("/") + "/")
        self.retry = RetryPolicy.upstream(
            max_retries=max_retries,
            base_delay=min(backoff, MAX_BACKOFF),
            max_delay=MAX_BACKOFF,
            max_retry_after=MAX_RETRY_AFTER,
            rand=rand,
        )
        self._client = httpx.AsyncClient(
            timeout=timeout, transport=transport, trust_env=False, follow_redirects=False
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def start(
        self, model: str, request: PredictRequest, *, task_id: str, cancelled: threading.Event
    ) -> Operation:
        url = self.base_url.join(f"v1beta/models/{model}:predictLongRunning")
        body = request.model_dump(mode="json", by_alias=True, exclude_none=True)

        async def once() -> Operation:
            try:
                response = await self._client.post(url, json=body, headers=self._headers(url))
            except httpx.TransportError as exc:
                failure = _transport_failure(exc)
                if isinstance(exc, _NOT_SENT):
                    raise _Retry(failure) from None
                # The request may have reached Google and started a job that is billed: a second
                # one would be paid twice, so this fails instead of retrying.
                raise _MaybeStarted(failure.code, failure.message, detail=failure.detail) from None
            return _operation(self._checked(response))

        try:
            return await self._with_retries("start", once, task_id=task_id, cancelled=cancelled)
        except (_MaybeStarted, EngineRefused):
            raise
        except EngineFailure as failure:
            if failure.code == "invalid_parameters":
                raise  # the request's fault: another engine would refuse it too
            # Google answered with a refusal, or the request never left: no job exists there,
            # so the model's next engine may take the task.
            raise EngineRefused(failure.code, failure.message, detail=failure.detail) from None

    async def poll(self, name: str, *, task_id: str, cancelled: threading.Event) -> Operation:
        # The name comes from the provider's answer and becomes part of a URL: keep it a path.
        if not _OPERATION_NAME.fullmatch(name) or ".." in name:
            raise EngineFailure(
                "service_error", "Veo answered with an unusable operation", detail=f"name {name!r}"
            )
        url = self.base_url.join(f"v1beta/{name}")

        async def once() -> Operation:
            try:
                response = await self._client.get(url, headers=self._headers(url))
            except httpx.TransportError as exc:
                raise _Retry(_transport_failure(exc)) from None
            return _operation(self._checked(response))

        return await self._with_retries("poll", once, task_id=task_id, cancelled=cancelled)

    async def download(
        self, uri: str, destination: Path, *, task_id: str, cancelled: threading.Event
    ) -> None:
        """Stream the file at ``uri`` (absolute, or relative to the base URL) to ``destination``."""

        async def once() -> None:
            url = self.base_url.join(uri)
            for _ in range(MAX_REDIRECTS + 1):
                try:
                    async with self._client.stream(
                        "GET", url, headers=self._headers(url)
                    ) as response:
                        if response.is_redirect and "location" in response.headers:
                            # Followed here, not by httpx, which would send our key header to
                            # whichever host the redirect names.
                            url = response.url.join(response.headers["location"])
                            continue
                        if not response.is_success:
                            await response.aread()
                            self._checked(response)
                        await _save(response, destination, cancelled)
                        return
                except httpx.TransportError as exc:
                    raise _Retry(_transport_failure(exc)) from None
            raise EngineFailure("service_error", "the video download redirected too many times")

        await self._with_retries("download", once, task_id=task_id, cancelled=cancelled)

    def _headers(self, url: httpx.URL) -> dict[str, str]:
        same_origin = (url.scheme, url.host, url.port) == (
            self.base_url.scheme,
            self.base_url.host,
            self.base_url.port,
        )
        return {"x-goog-api-key": self._key} if same_origin else {}

    async def _with_retries(
        self,
        what: str,
        once: Callable[[], Awaitable[T]],
        *,
        task_id: str,
        cancelled: threading.Event,
    ) -> T:
        attempt = 0
        while True:
            if cancelled.is_set():
                raise GenerationCancelled
            try:
                return await once()
            except _Retry as retry:
                delay = self.retry.delay(attempt, retry.retry_after)
                if delay is None:
                    raise retry.failure from None
                attempt += 1
                logger.warning(
                    "task %s: Gemini %s failed (%s); retry %d of %d in %.2f s",
                    task_id,
                    what,
                    retry.failure.detail,
                    attempt,
                    self.retry.max_retries,
                    delay,
                )
                await sleep_unless_cancelled(delay, cancelled)

    def _checked(self, response: httpx.Response) -> httpx.Response:
        """The response if it succeeded; otherwise raise its failure, a _Retry if transient."""
        status = response.status_code
        if response.is_success:
            return response
        failure = _status_failure(response)
        if self.retry.retryable_status(status):
            raise _Retry(failure, header_retry_after(response.headers))
        raise failure


def _status_failure(response: httpx.Response) -> EngineFailure:
    """What an error answer of the Gemini API means for the task."""
    status = response.status_code
    error = _error_status(response)
    detail = f"HTTP {status}"
    if error is not None:
        detail += f" {error.status}: {error.message}"
    if status == 429:
        return EngineFailure("resource_exhausted", "Veo quota is exhausted", detail=detail)
    if status >= 500:
        return EngineFailure("service_unavailable", "Veo is unavailable", detail=detail)
    if status in (401, 403) or (error is not None and "API_KEY" in response.text):
        return EngineFailure(
            "service_error",
            "the Gemini API refused the API key; check GEMINI_API_KEY",
            detail=detail,
        )
    if status in (400, 413):
        reason = error.message if error is not None and error.message else "bad request"
        return EngineFailure(
            "invalid_parameters", f"Veo refused the request: {reason}", detail=detail
        )
    return EngineFailure("service_error", f"Veo answered HTTP {status}", detail=detail)


def _operation(response: httpx.Response) -> Operation:
    try:
        operation = Operation.model_validate_json(response.content)
    except ValidationError as exc:
        raise EngineFailure(
            "service_error",
            "Veo answered with something that is not an operation",
            detail=f"{exc.error_count()} validation errors: {response.text[:500]}",
        ) from None
    if not operation.done and not operation.name:
        raise EngineFailure("service_error", "Veo answered with an operation without a name")
    return operation


def _error_status(response: httpx.Response) -> Status | None:
    try:
        return _ErrorBody.model_validate_json(response.content).error
    except ValidationError:
        return None


def _transport_failure(exc: httpx.TransportError) -> EngineFailure:
    return EngineFailure(
        "service_unavailable",
        "the Gemini API could not be reached",
        detail=f"{type(exc).__name__}: {exc}",
    )


async def _save(response: httpx.Response, destination: Path, cancelled: threading.Event) -> None:
    size = 0
    # Opened in a thread (it may block on a slow disk); the writes are small page-cache copies.
    handle = await asyncio.to_thread(destination.open, "wb")
    try:
        async for chunk in response.aiter_bytes():
            if cancelled.is_set():
                raise GenerationCancelled
            size += len(chunk)
            if size > MAX_VIDEO_BYTES:
                raise EngineFailure(
                    "generation_failed_no_content",
                    "the video Veo returned is too large",
                    detail=f"over {MAX_VIDEO_BYTES} bytes",
                )
            handle.write(chunk)
    finally:
        handle.close()
