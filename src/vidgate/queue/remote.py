"""A worker on another host: the worker protocol over HTTP (``vidgate worker --server``).

``RemoteRuns`` is the worker loop's ``RunSource`` for an API server it reaches with a worker
token; the engines run here, from this host's model registry. The server may restart or be
unreachable for a while: calls are retried with the shared retry policy's backoff (honouring a
``Retry-After``), and a heartbeat keeps the
lease whenever it gets through. The task is given up (engine stopped, scratch files deleted)
when the server says this attempt no longer holds it (409), the task was cancelled, or nothing
got through for two lease periods, by which time the server has handed it to someone else.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

import httpx

from vidgate.client.retry import RetryPolicy, header_retry_after
from vidgate.engines.registry import ModelRegistry
from vidgate.queue.worker import until_stopped
from vidgate.tasks.model import Heartbeat, Task, TaskStatus

log = logging.getLogger(__name__)

API = "/worker/v1"
CHUNK = 256 * 1024
# No retry limit: a call is repeated until it gets through or the lease is given up (below).
# A long Retry-After is shortened to the cap, so that the lease's own clock stays in charge.
WORKER_RETRY: Final = RetryPolicy.upstream(
    max_retries=None, base_delay=0.5, max_delay=15.0, max_retry_after=15.0
)
# A process that is stopping tries to hand its task back quickly, or not at all.
HAND_BACK_RETRIES: Final = 2
HAND_BACK_MAX_DELAY: Final = 1.0
# Statuses after which a call is not worth repeating: the attempt is over.
ATTEMPT_OVER = {401, 404, 409}


class ServerUnreachable(Exception):
    """The API server did not answer (or answered 5xx); the call may be retried later."""


@dataclass
class Backoff:
    """Failures in a row, and the pause after the next one by the worker's retry policy."""

    policy: RetryPolicy = WORKER_RETRY
    failures: int = 0

    def next(self, retry_after: float | None = None) -> float:
        delay = self.policy.delay(self.failures, retry_after)
        self.failures += 1
        # Never None with WORKER_RETRY (no limit, long pauses shortened); the cap if a policy
        # without those is passed.
        return self.policy.max_delay if delay is None else delay

    def reset(self) -> None:
        self.failures = 0


@dataclass
class _Held:
    """What this worker knows of a lease it holds."""

    lease_seconds: float
    last_renewed: float
    lost: bool = False
    retry_at: float = 0.0
    backoff: Backoff = field(default_factory=Backoff)


class RemoteRuns:
    """Claims and reports over HTTP; one per worker loop (its backoff is its own)."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        registry: ModelRegistry,
        models: Sequence[str],
        *,
        claim_wait: float = 25.0,
        stop: asyncio.Event | None = None,
        clock: Callable[[], float] = time.monotonic,
        retry: RetryPolicy = WORKER_RETRY,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.client = client
        self.registry = registry
        self.models = list(models)
        self.claim_wait = claim_wait
        # Set when the worker stops: an open long poll is dropped (a task the server claimed
        # for it as it hung up is handed back by the server).
        self.stop = stop or asyncio.Event()
        self.clock = clock
        self.retry = retry
        self.hand_back_retry = replace(
            retry,
            max_retries=HAND_BACK_RETRIES,
            base_delay=min(retry.base_delay, HAND_BACK_MAX_DELAY),
            max_delay=HAND_BACK_MAX_DELAY,
        )
        self.sleep = sleep
        self.backoff = Backoff(retry)
        self._pause = 0.0
        self._held: dict[str, _Held] = {}

    # --- claiming ------------------------------------------------------------------------

    async def claim(self, worker: str, engines: Collection[str]) -> Task | None:
        """The oldest task of this worker's models (``engines`` are the server's business)."""
        started = self.clock()
        body = {"worker": worker, "models": self.models, "wait": self.claim_wait}
        try:
            response = await until_stopped(
                self.stop,
                self.client.post(
                    f"{API}/claim",
                    json=body,
                    timeout=httpx.Timeout(30, read=self.claim_wait + 30),
                ),
            )
        except httpx.TransportError as error:
            self._pause = self.backoff.next()
            log.warning("claim: server unreachable (%r); again in %.1f s", error, self._pause)
            return None
        if response is None:
            return None
        if response.status_code in (200, 204):
            self.backoff.reset()
            # A claim that came back at once (a server that holds none open) waits a poll.
            self._pause = -1.0 if self.clock() - started < 1.0 else 0.0
            return self._claimed(response.json()) if response.status_code == 200 else None
        self._pause = self.backoff.next(header_retry_after(response.headers))
        if response.status_code == 401:
            self._pause = max(self._pause, 30.0)
            log.error("claim: the server refused this worker token; again in %.0f s", self._pause)
        else:
            log.warning(
                "claim: %s %s; again in %.1f s", response.status_code, _why(response), self._pause
            )
        return None

    async def idle(self, seconds: float) -> None:
        pause, self._pause = self._pause, 0.0
        if pause:
            await self.sleep(seconds if pause < 0 else pause)

    def _claimed(self, data: dict[str, Any]) -> Task:
        claimed = data["task"]
        lease = float(data["lease_seconds"])
        task = Task(
            id=claimed["id"],
            model=claimed["model"],
            engine=claimed["engine"],
            status=TaskStatus.PROCESSING,
            progress=int(claimed["progress"]),
            prompt=claimed["prompt"],
            aspect_ratio=claimed["aspect_ratio"],
            # The inputs' download paths on the server, in order.
            image_keys=[item["url"] for item in claimed["inputs"]],
            attempt=int(claimed["attempt"]),
            # What only the server needs (owner, price, callback) stays on the server.
            account_id="",
            callback_url=None,
            user_group="",
            credits_cents=0,
            estimated_time=0,
            created_at=0.0,
            updated_at=0.0,
        )
        self._held[task.id] = _Held(
            lease_seconds=lease, last_renewed=self.clock(), backoff=Backoff(self.retry)
        )
        log.info("task %s claimed from the server (attempt %d)", task.id, task.attempt)
        return task

    # --- running ---------------------------------------------------------------------------

    async def inputs(self, task: Task, workdir: Path) -> list[Path]:
        paths = []
        for index, url in enumerate(task.image_keys):
            target = workdir / "inputs" / task.id / str(index)
            response = await self._retrying(task, functools.partial(self._download, url, target))
            if response is None or response.status_code != 200:
                why = "the attempt is over" if response is None else _why(response)
                raise AttemptOver(f"task {task.id}: input {index} could not be fetched: {why}")
            paths.append(target)
        return paths

    async def _download(self, url: str, target: Path) -> httpx.Response:
        target.parent.mkdir(parents=True, exist_ok=True)
        async with self.client.stream("GET", url) as response:
            if response.status_code != 200:
                await response.aread()
                return response
            with target.open("wb") as handle:
                async for chunk in response.aiter_raw():
                    handle.write(chunk)
        return response

    async def heartbeat(self, task: Task, progress: int | None = None) -> Heartbeat:
        held = self._held.get(task.id)
        if held is None or held.lost:
            return Heartbeat(held=False)
        now = self.clock()
        if now - held.last_renewed > 2 * held.lease_seconds:
            log.warning("task %s: no heartbeat got through for two leases; giving it up", task.id)
            held.lost = True
            return Heartbeat(held=False)
        if now < held.retry_at:
            raise ServerUnreachable("backing off")
        try:
            response = await self.client.post(
                f"{API}/tasks/{task.id}/heartbeat",
                json={"attempt": task.attempt, "progress": progress},
            )
        except httpx.TransportError as error:
            held.retry_at = now + held.backoff.next()
            raise ServerUnreachable(repr(error)) from None
        if response.status_code in ATTEMPT_OVER:
            log.warning("task %s: the server took the task back (%s)", task.id, _why(response))
            held.lost = True
            return Heartbeat(held=False)
        if response.status_code != 200:
            held.retry_at = now + held.backoff.next(header_retry_after(response.headers))
            raise ServerUnreachable(f"{response.status_code} {_why(response)}")
        held.backoff.reset()
        held.last_renewed = self.clock()
        return Heartbeat(held=True, cancel_requested=bool(response.json()["cancelled"]))

    async def complete(self, task: Task, output: Path) -> None:
        size = (await asyncio.to_thread(output.stat)).st_size

        async def upload() -> httpx.Response:
            return await self.client.put(
                f"{API}/tasks/{task.id}/result",
                params={"attempt": task.attempt},
                content=_chunks(output),
                headers={"Content-Type": "video/mp4", "Content-Length": str(size)},
                timeout=httpx.Timeout(30, write=300, read=300),
            )

        response = await self._retrying(task, upload)
        if response is None:
            return
        if response.status_code == 200:
            log.info("task %s: video delivered (%s)", task.id, response.json()["status"])
        elif response.status_code == 400:
            await self.retry_or_fail(task, f"the server refused the video: {_why(response)}")
        elif response.status_code == 413:
            await self.fail(task, "service_error", f"The video was too large: {_why(response)}")
        self._held.pop(task.id, None)

    async def fail(self, task: Task, code: str, message: str) -> None:
        await self._report(task, code, message, retryable=False)

    async def retry_or_fail(self, task: Task, reason: str) -> None:
        await self._report(task, "service_error", reason, retryable=True)

    async def _report(self, task: Task, code: str, message: str, *, retryable: bool) -> None:
        body = {"attempt": task.attempt, "code": code, "message": message, "retryable": retryable}
        await self._retrying(
            task, lambda: self.client.post(f"{API}/tasks/{task.id}/fail", json=body)
        )
        self._held.pop(task.id, None)

    async def hand_back(self, task: Task) -> bool:
        """One quick try or two: the process is stopping, and a lost hand-back only costs the
        task a lease's wait."""
        attempt = 0
        try:
            while True:
                with contextlib.suppress(httpx.TransportError):
                    response = await self.client.post(
                        f"{API}/tasks/{task.id}/hand-back",
                        json={"attempt": task.attempt},
                        timeout=5,
                    )
                    if not self.hand_back_retry.retryable_status(response.status_code):
                        if response.status_code == 204:
                            log.info("task %s handed back to the server", task.id)
                        return response.status_code == 204
                delay = self.hand_back_retry.delay(attempt)
                if delay is None:
                    return False
                await self.sleep(delay)
                attempt += 1
        finally:
            self._held.pop(task.id, None)

    def track(self, task_id: str, cancelled: threading.Event) -> None:
        """Cancels reach a remote worker through its heartbeat only."""

    def untrack(self, task_id: str) -> None:
        """Nothing to undo: see ``track``."""

    async def _retrying(
        self, task: Task, call: Callable[[], Awaitable[httpx.Response]]
    ) -> httpx.Response | None:
        """``call()`` until the server answers something final; None when this attempt is
        over (the server said so, the heartbeat gave it up, or two leases passed without a
        call getting through)."""
        backoff = Backoff(self.retry)
        while True:
            held = self._held.get(task.id)
            if held is not None and self.clock() - held.last_renewed > 2 * held.lease_seconds:
                held.lost = True
            if held is None or held.lost:
                log.warning("task %s: attempt %d is over; not reporting", task.id, task.attempt)
                return None
            retry_after = None
            try:
                response = await call()
            except httpx.TransportError as error:
                problem = repr(error)
            else:
                if response.status_code in ATTEMPT_OVER:
                    log.warning(
                        "task %s: attempt %d is over (%s)", task.id, task.attempt, _why(response)
                    )
                    held.lost = True
                    return None
                if not WORKER_RETRY.retryable_status(response.status_code):
                    return response
                problem = f"{response.status_code} {_why(response)}"
                retry_after = header_retry_after(response.headers)
            delay = backoff.next(retry_after)
            log.warning("task %s: %s; again in %.1f s", task.id, problem, delay)
            await self.sleep(delay)


class AttemptOver(Exception):
    """The server no longer lets this attempt work on the task."""


def _why(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except Exception:
        return response.text[:200]


async def _chunks(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as handle:
        while chunk := await asyncio.to_thread(handle.read, CHUNK):
            yield chunk
