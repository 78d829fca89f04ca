"""The relay engine: forwards a task to another server that speaks this API and keeps its video."""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Final

import av.error
import httpx

from vidgate.client import AsyncClient, VidgateError
from vidgate.client.retry import RetryPolicy
from vidgate.engines.base import (
    EngineFailure,
    GenerationCancelled,
    GenerationContext,
    GenerationRequest,
    RisingProgress,
)
from vidgate.engines.cancellation import sleep_unless_cancelled, until_cancelled
from vidgate.engines.relay_upstream import UpstreamErrors
from vidgate.media.probe import probe

logger = logging.getLogger(__name__)

# A vidgate upstream refuses a longer long-poll (400), so the wait is clamped to its limit.
MAX_POLL_WAIT: Final = 30.0
# Progress stays below this until the video is stored here: the upstream finishing is not us.
POLLING_CAP: Final = 0.9
DOWNLOAD_CAP: Final = 0.94
MAX_VIDEO_BYTES: Final = 2 * 1024**3
# A cancel sent upstream is best effort: it does not hold up the end of the task here.
CANCEL_SECONDS: Final = 10.0


class RelayEngine:
    """Makes each video on an upstream server of this same API, then stores the file here.

    It talks to the upstream through the SDK (``vidgate.client.AsyncClient``) with the shared
    retry policy: 408, 425, 429, 500, 502-504 and connection errors are retried with backoff, a
    ``Retry-After`` is honoured up to ``max_backoff``. The create carries ``Idempotency-Key:
    vidgate-{task_id}``, so a retried create, or a retry of the whole task after a crash,
    resumes the upstream task instead of paying for a second. When the worker itself stops
    (``asyncio.CancelledError``) the upstream task is left running for that retry; only a
    cancelled task cancels it upstream. The key goes only to the upstream's API: the result is
    downloaded without it (result links are signed, and may point at a CDN).
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
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.upstream_model = upstream_model
        self.image_url = image_url
        self.poll_wait = min(max(0.0, poll_wait), MAX_POLL_WAIT)
        self.timeout = timeout
        self.poll_interval = poll_interval
        self.max_poll_interval = max_poll_interval
        self.retry = RetryPolicy.upstream(
            max_retries=max_retries,
            base_delay=backoff,
            max_delay=max_backoff,
            max_retry_after=max_backoff,
            rand=rand,
        )
        self._api_key = api_key
        self._sleep = sleep
        self._errors = UpstreamErrors(api_key, self.retry)
        # One connection pool for every task. No proxy from the environment; no redirect of an
        # API call is followed (with the key), downloads follow theirs (without it).
        self._http = httpx.AsyncClient(
            transport=transport, timeout=timeout, trust_env=False, follow_redirects=False
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    def _upstream(self, task_id: str, cancelled: threading.Event | None) -> AsyncClient:
        """An SDK client on the shared pool whose retry pauses end at ``cancelled`` (if any)."""

        async def pause(seconds: float) -> None:
            logger.warning("task %s: an upstream call failed; retry in %.2f s", task_id, seconds)
            if cancelled is None:
                await self._sleep(seconds)
            else:
                await sleep_unless_cancelled(seconds, cancelled, sleep=self._sleep)

        return AsyncClient(
            self._api_key,
            self.base_url,
            timeout=self.timeout,
            retry_policy=self.retry,
            http_client=self._http,
            sleep=pause,
        )

    async def generate(
        self, request: GenerationRequest, output: Path, context: GenerationContext
    ) -> None:
        task_id = request.task_id
        progress = RisingProgress(context.progress)
        upstream = self._upstream(task_id, context.cancelled)
        upstream_id = await self._create(upstream, request)
        logger.info("task %s: relayed as upstream task %s", task_id, upstream_id)
        try:
            result_url = await self._wait_for_result(
                upstream, task_id, upstream_id, context, progress
            )
        except GenerationCancelled:
            await self._cancel_upstream(task_id, upstream_id)
            raise
        await self._store(upstream, result_url, output, context, progress)
        progress(1.0)
        logger.info("task %s: stored the video of upstream task %s", task_id, upstream_id)

    def _image_urls(self, request: GenerationRequest) -> list[str]:
        if not request.images:
            return []
        if self.image_url is None:
            raise EngineFailure(
                "invalid_parameters",
                "This model relays to another server, which fetches images by URL: the "
                "operator must set VIDGATE_PUBLIC_URL for image tasks.",
                detail="relay engine built without image_url",
            )
        return [self.image_url(path) for path in request.images]

    async def _create(self, upstream: AsyncClient, request: GenerationRequest) -> str:
        """Not cut short by a cancel: it could leave a paid upstream task whose id we never
        learn. It ends within the timeout (its retry pauses do end at a cancel); then the task
        is cancelled upstream."""
        image_urls = self._image_urls(request)
        try:
            task = await upstream.videos.generate(
                request.prompt,
                model=self.upstream_model,
                image_urls=image_urls,
                aspect_ratio=request.aspect_ratio,
                idempotency_key=f"vidgate-{request.task_id}",
            )
        except VidgateError as error:
            raise self._errors.create_failed(error) from None
        return task.id

    async def _wait_for_result(
        self,
        upstream: AsyncClient,
        task_id: str,
        upstream_id: str,
        context: GenerationContext,
        progress: RisingProgress,
    ) -> str:
        interval = self.poll_interval
        seen: tuple[str, int] | None = None
        while True:
            started = time.monotonic()
            try:
                task = await until_cancelled(
                    upstream.tasks.get(upstream_id, wait=self.poll_wait), context.cancelled
                )
            except VidgateError as error:
                # We give up on a task the upstream may still be making, and charging for.
                await self._cancel_upstream(task_id, upstream_id)
                raise self._errors.poll_failed(error) from None
            result_url = self._errors.finished_video(upstream_id, task)
            if result_url is not None:
                return result_url
            progress(min(POLLING_CAP, task.progress / 100))
            state = (task.status, task.progress)
            if state == seen:
                interval = min(self.max_poll_interval, interval * 1.5)
            else:
                interval = self.poll_interval
            seen = state
            # A long-poll that was held counts as waiting; an upstream that ignores ``wait``
            # answers at once and is asked again only after the interval.
            pause = interval - (time.monotonic() - started)
            context.check_cancelled()
            if pause > 0:
                await sleep_unless_cancelled(pause, context.cancelled, sleep=self._sleep)

    async def _cancel_upstream(self, task_id: str, upstream_id: str) -> None:
        """Best effort: the task is cancelled here whatever the upstream answers."""
        upstream = self._upstream(task_id, None)
        try:
            async with asyncio.timeout(CANCEL_SECONDS):
                task = await upstream.tasks.cancel(upstream_id)
            outcome = f"it is {task.status}"
        except VidgateError as error:
            outcome = self._errors.redact(str(error))
        except TimeoutError:
            outcome = f"no answer in {CANCEL_SECONDS:g} s"
        logger.info("task %s: asked the upstream to cancel %s: %s", task_id, upstream_id, outcome)

    async def _store(
        self,
        upstream: AsyncClient,
        url: str,
        output: Path,
        context: GenerationContext,
        progress: RisingProgress,
    ) -> None:
        """Download the upstream's video beside ``output``, check it decodes, then move it in."""
        # The worker hands each task a fresh directory; the token keeps two attempts apart anyway.
        download = output.with_name(f".{output.name}.{secrets.token_hex(4)}.download")

        def downloaded(done: int, total: int | None) -> None:
            if total:
                progress(POLLING_CAP + (DOWNLOAD_CAP - POLLING_CAP) * min(1.0, done / total))

        fetch = upstream.download(url, download, on_progress=downloaded, max_bytes=MAX_VIDEO_BYTES)
        try:
            try:
                await until_cancelled(fetch, context.cancelled)
            except VidgateError as error:
                raise self._errors.download_failed(error) from None
            await _verify(download)
            await asyncio.to_thread(download.replace, output)
        finally:
            # Whichever is left: the SDK's part file, or the whole file if it failed the check.
            for leftover in (download.with_name(download.name + ".part"), download):
                await asyncio.to_thread(leftover.unlink, True)  # missing_ok


async def _verify(path: Path) -> None:
    try:
        info = await asyncio.to_thread(probe, path)
    except (av.error.FFmpegError, IndexError, ValueError, OSError) as error:
        reason = f"not decodable ({type(error).__name__})"
    else:
        if info.codec == "h264" and info.frame_count > 0:
            return
        reason = f"codec {info.codec!r}, {info.frame_count} frames"
    raise EngineFailure(
        "generation_failed_no_content",
        "The upstream's file is not a playable H.264 video.",
        detail=f"upstream result: {reason}",
    )
