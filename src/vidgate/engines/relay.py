"""The relay engine: forwards a task to another server that speaks this API and keeps its video."""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import inspect
import logging
import random
import secrets
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final, TypeVar, cast, get_args
from urllib.parse import quote, urlsplit

import av.error
import httpx
from pydantic import BaseModel, ValidationError

from vidgate.engines.base import (
    EngineFailure,
    EngineRefused,
    GenerationCancelled,
    GenerationContext,
    GenerationRequest,
    TaskErrorCode,
)
from vidgate.media.video import probe

logger = logging.getLogger(__name__)

T = TypeVar("T")

TASK_ERROR_CODES: Final[frozenset[str]] = frozenset(get_args(TaskErrorCode))
# A vidgate upstream refuses a longer long-poll (400), so the wait is clamped to its limit.
MAX_POLL_WAIT: Final = 30.0
# Progress stays below this until the video is stored here: the upstream finishing is not us.
POLLING_CAP: Final = 0.9
DOWNLOAD_CAP: Final = 0.94
MAX_VIDEO_BYTES: Final = 2 * 1024**3
RETRYABLE: Final = frozenset({408, 409, 425, 429})  # 409: the same create is still in flight


class UpstreamError(BaseModel):
    code: str = "unknown_error"
    message: str = ""


class UpstreamTask(BaseModel):
    """The part of the evolink task object the relay reads (pydantic ignores the rest)."""

    id: str
    status: str
    progress: float = 0
    results: list[str] | None = None
    error: UpstreamError | None = None


class _Progress:
    """Forwards progress to the context, never going down."""

    def __init__(self, report: Callable[[float], None]) -> None:
        self._report = report
        self.value = 0.0

    def __call__(self, fraction: float) -> None:
        fraction = min(1.0, max(0.0, fraction))
        if fraction > self.value:
            self.value = fraction
            self._report(fraction)


async def _watch(cancelled: threading.Event) -> None:
    # Another thread sets the event, which cannot wake this loop: it is looked at often instead.
    while True:
        if cancelled.is_set():
            return
        await asyncio.sleep(0.05)


async def _unless_cancelled(work: Awaitable[T], cancelled: threading.Event) -> T:
    """Await ``work``; stop it and raise ``GenerationCancelled`` as soon as ``cancelled`` is set."""
    if cancelled.is_set():
        if inspect.iscoroutine(work):
            work.close()  # never started: closing it spares a "never awaited" warning
        raise GenerationCancelled
    job = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_watch(cancelled))
    try:
        await asyncio.wait({job, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pending in (job, watcher):
            pending.cancel()
        # Let the cancelled request close its connection before going on.
        await asyncio.gather(job, watcher, return_exceptions=True)
    if job.done() and not job.cancelled():
        return job.result()
    raise GenerationCancelled


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    with contextlib.suppress(ValueError):
        return max(0.0, float(value))
    with contextlib.suppress(TypeError, ValueError):  # an HTTP date
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    return None


def _error_message(response: httpx.Response) -> str:
    """The upstream's own words from an evolink error envelope, else its status line."""
    with contextlib.suppress(ValueError):
        body = response.json()
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            message = body["error"].get("message")
            if isinstance(message, str) and message:
                return message[:500]
    return f"HTTP {response.status_code} {response.reason_phrase}"


class RelayEngine:
    """Makes each video on an upstream server of this same API, then stores the file here.

    The create carries ``Idempotency-Key: vidgate-{task_id}``, so a retried create, or a retry
    of the whole task after a crash, resumes the upstream task instead of paying for a second.
    When the worker itself stops (``asyncio.CancelledError``) the upstream task is left running
    for that retry; only a cancelled task cancels it upstream.
    """

    name = "relay"

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        upstream_model: str = "veo3.1-fast",
        image_url: Callable[[Path], str] | None = None,
        poll_wait: float = 20.0,
        max_retries: int = 5,
        timeout: float = 60.0,
        transport: httpx.AsyncBaseTransport | None = None,
        backoff: float = 1.0,
        max_backoff: float = 30.0,
        poll_interval: float = 2.0,
        max_poll_interval: float = 15.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.upstream_model, self.image_url = upstream_model, image_url
        self.poll_wait = min(max(0.0, poll_wait), MAX_POLL_WAIT)
        self.max_retries, self.timeout = max_retries, timeout
        self.backoff, self.max_backoff = backoff, max_backoff
        self.poll_interval, self.max_poll_interval = poll_interval, max_poll_interval
        self._sleep, self._api_key = sleep, api_key
        self._auth = {"Authorization": f"Bearer {api_key}"}
        self._client = httpx.AsyncClient(
            transport=transport, timeout=timeout, trust_env=False, follow_redirects=False
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def generate(
        self, request: GenerationRequest, output: Path, context: GenerationContext
    ) -> None:
        task_id, progress = request.task_id, _Progress(context.progress)
        upstream_id = await self._create(task_id, self._body(request), context)
        logger.info("task %s: relayed as upstream task %s", task_id, upstream_id)
        try:
            result_url = await self._wait_for_result(task_id, upstream_id, context, progress)
        except GenerationCancelled:
            await self._cancel_upstream(task_id, upstream_id)
            raise
        await self._store(task_id, result_url, output, context, progress)
        progress(1.0)
        logger.info("task %s: stored the video of upstream task %s", task_id, upstream_id)

    def _body(self, request: GenerationRequest) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.upstream_model, "prompt": request.prompt}
        body["aspect_ratio"] = request.aspect_ratio
        if request.images:
            if self.image_url is None:
                raise EngineFailure(
                    "invalid_parameters", "This model relays to another server, which fetches "
                    "images by URL: the operator must set VIDGATE_PUBLIC_URL for image tasks.",
                    detail="relay engine built without image_url",
                )  # fmt: skip
            body["image_urls"] = [self.image_url(path) for path in request.images]
        return body

    def _redact(self, text: str) -> str:
        return text.replace(self._api_key, "[api key]") if self._api_key else text

    async def _send(
        self,
        task_id: str,
        what: str,
        call: Callable[[], Awaitable[httpx.Response]],
        context: GenerationContext,
        *,
        interruptible: bool = True,
    ) -> httpx.Response:
        """``call`` until it answers other than 429/5xx/a transport error, with backoff.

        A create is not cut short by a cancel: it could leave a paid upstream task whose id we
        never learn. It ends within the timeout; then the task is cancelled upstream."""
        for attempt in range(self.max_retries + 1):
            wait: float | None = None
            try:
                work = call()
                response = await (
                    _unless_cancelled(work, context.cancelled) if interruptible else work
                )
            except httpx.TransportError as error:
                reason = f"{type(error).__name__}: {self._redact(str(error))}"
            else:
                if response.status_code not in RETRYABLE and response.status_code < 500:
                    return response
                reason = f"HTTP {response.status_code}"
                wait = _retry_after(response)
                await response.aclose()  # a streamed answer holds its connection until closed
            if attempt == self.max_retries:
                break
            delay = self.backoff * 2**attempt * (0.5 + random.random() / 2)
            delay = min(self.max_backoff, delay if wait is None else wait)
            logger.warning(
                "task %s: upstream %s failed (%s); retry %d in %.2f s",
                task_id, what, reason, attempt + 1, delay,
            )  # fmt: skip
            await _unless_cancelled(self._sleep(delay), context.cancelled)
        raise EngineFailure(
            "service_unavailable", "The upstream video service is unavailable; try again later.",
            detail=f"upstream {what}: {reason} after {self.max_retries + 1} attempts",
        )  # fmt: skip

    async def _create(self, task_id: str, body: dict[str, Any], context: GenerationContext) -> str:
        headers = {**self._auth, "Idempotency-Key": f"vidgate-{task_id}"}
        url = f"{self.base_url}/v1/videos/generations"

        def call() -> Awaitable[httpx.Response]:
            return self._client.post(url, json=body, headers=headers)

        response = await self._send(task_id, "create", call, context, interruptible=False)
        status, message = response.status_code, self._redact(_error_message(response))
        detail = f"upstream create: HTTP {status}: {message}"
        if status == 200:
            try:
                return UpstreamTask.model_validate_json(response.content).id
            except ValidationError:
                detail = "upstream create: the answer is not a task object"
        elif status in (400, 413):
            raise EngineFailure("invalid_parameters", message, detail=detail)
        elif status == 402:
            raise EngineRefused(
                "resource_exhausted", "The upstream account is out of credits.", detail=detail
            )
        elif status in (401, 403):
            detail = f"upstream create: HTTP {status}: the relay's API key was refused"
        # The upstream answered without taking the task: the model's next engine may.
        raise EngineRefused(
            "service_error", "The upstream video service refused the task.", detail=detail
        )

    async def _wait_for_result(
        self, task_id: str, upstream_id: str, context: GenerationContext, progress: _Progress
    ) -> str:
        url = f"{self.base_url}/v1/tasks/{quote(upstream_id, safe='')}"
        params = {"wait": f"{self.poll_wait:g}"} if self.poll_wait else {}
        request_timeout = self.timeout + self.poll_wait
        interval, seen = self.poll_interval, None

        def call() -> Awaitable[httpx.Response]:
            return self._client.get(url, params=params, headers=self._auth, timeout=request_timeout)

        while True:
            started = time.monotonic()
            try:
                task = self._parse_task(await self._send(task_id, "poll", call, context))
            except EngineFailure:
                # We give up on a task the upstream may still be making, and charging for.
                await self._cancel_upstream(task_id, upstream_id)
                raise
            if task.status == "completed":
                if not task.results:
                    raise EngineFailure(
                        "generation_failed_no_content", "The upstream task has no video.",
                        detail=f"upstream task {upstream_id}: completed with no results",
                    )  # fmt: skip
                return task.results[0]
            if task.status == "failed":
                error = task.error or UpstreamError()
                known = error.code in TASK_ERROR_CODES
                code = cast(TaskErrorCode, error.code) if known else "unknown_error"
                message = self._redact(error.message) or "The upstream task failed."
                raise EngineFailure(
                    code, message, detail=f"upstream task {upstream_id}: {error.code}: {message}"
                )
            progress(min(POLLING_CAP, task.progress / 100))
            state = (task.status, task.progress)
            interval = (
                self.poll_interval if state != seen else min(self.max_poll_interval, interval * 1.5)
            )
            seen = state
            # A long-poll that was held counts as waiting; an upstream that ignores ``wait``
            # answers at once and is asked again only after the interval.
            pause = interval - (time.monotonic() - started)
            context.check_cancelled()
            if pause > 0:
                await _unless_cancelled(self._sleep(pause), context.cancelled)

    def _parse_task(self, response: httpx.Response) -> UpstreamTask:
        status = response.status_code
        if status == 200:
            try:
                return UpstreamTask.model_validate_json(response.content)
            except ValidationError:
                detail = "upstream poll: the answer is not a task object"
        elif status in (401, 403):
            detail = f"upstream poll: HTTP {status}: the relay's API key was refused"
        else:
            detail = f"upstream poll: HTTP {status}: {self._redact(_error_message(response))}"
        raise EngineFailure(
            "service_error", "The upstream video service lost track of the task.", detail=detail
        )

    async def _cancel_upstream(self, task_id: str, upstream_id: str) -> None:
        """Best effort: the task is cancelled here whatever the upstream answers."""
        url = f"{self.base_url}/v1/tasks/{quote(upstream_id, safe='')}/cancel"
        try:
            response = await self._client.post(url, headers=self._auth, timeout=10.0)
            outcome = f"HTTP {response.status_code}"
        except httpx.HTTPError as error:
            outcome = type(error).__name__
        logger.info("task %s: asked the upstream to cancel %s: %s", task_id, upstream_id, outcome)

    async def _store(
        self, task_id: str, url: str, output: Path, context: GenerationContext, progress: _Progress
    ) -> None:
        """Download the upstream's video beside ``output``, check it decodes, then move it in."""
        # The worker hands each task a fresh directory; the token keeps two attempts apart anyway.
        part = output.with_name(f".{output.name}.{secrets.token_hex(4)}.part")
        # The key goes only to the upstream itself, never to a CDN its result URL points at.
        same_origin = urlsplit(url)[:2] == urlsplit(self.base_url)[:2]
        request = self._client.build_request("GET", url, headers=self._auth if same_origin else {})

        def call() -> Awaitable[httpx.Response]:
            return self._client.send(request, stream=True, follow_redirects=True)

        try:
            response = await self._send(task_id, "download", call, context)
            try:
                await _unless_cancelled(self._write(response, part, progress), context.cancelled)
            finally:
                await response.aclose()
            await self._verify(part)
            await asyncio.to_thread(part.replace, output)
        finally:
            await asyncio.to_thread(part.unlink, True)  # missing_ok: it was moved in

    async def _write(self, response: httpx.Response, part: Path, progress: _Progress) -> None:
        if response.status_code != 200:
            raise EngineFailure(
                "generation_failed_no_content", "The upstream's video could not be downloaded.",
                detail=f"upstream result download: HTTP {response.status_code}",
            )  # fmt: skip
        total, written = int(response.headers.get("Content-Length") or 0), 0
        try:
            with await asyncio.to_thread(part.open, "wb") as sink:
                async for chunk in response.aiter_bytes(1 << 16):
                    written += len(chunk)
                    if written > MAX_VIDEO_BYTES:
                        raise EngineFailure(
                            "generation_failed_no_content", "The upstream's video is too large.",
                            detail=f"upstream result: over {MAX_VIDEO_BYTES} bytes",
                        )  # fmt: skip
                    sink.write(chunk)
                    if total:
                        span = DOWNLOAD_CAP - POLLING_CAP
                        progress(POLLING_CAP + span * min(1.0, written / total))
        except httpx.TransportError as error:
            raise EngineFailure(
                "service_unavailable", "The download of the upstream's video was cut off.",
                detail=f"upstream result download: {type(error).__name__}",
            ) from None  # fmt: skip

    async def _verify(self, part: Path) -> None:
        try:
            info = await asyncio.to_thread(probe, part)
        except (av.error.FFmpegError, IndexError, ValueError, OSError) as error:
            reason = f"not decodable ({type(error).__name__})"
        else:
            if info.codec == "h264" and info.frame_count > 0:
                return
            reason = f"codec {info.codec!r}, {info.frame_count} frames"
        raise EngineFailure(
            "generation_failed_no_content", "The upstream's file is not a playable H.264 video.",
            detail=f"upstream result: {reason}",
        )  # fmt: skip
