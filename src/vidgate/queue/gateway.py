"""The API's side of the remote-worker protocol: long-poll claims, attempt checks, results.

A remote worker holds a task exactly as a local one does, by its attempt number; every call
names it, and one that no longer holds the task gets ``StaleAttempt`` (409), so the fence holds
across the network.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from vidgate.engines.registry import ModelRegistry
from vidgate.errors import InvalidRequest, RequestTooLarge, StaleAttempt, TaskNotFound
from vidgate.media.files import FileStore
from vidgate.media.probe import probe
from vidgate.store import task_rows
from vidgate.tasks import lifecycle
from vidgate.tasks.lifecycle import HandedBack
from vidgate.tasks.model import Task, TaskStatus
from vidgate.tasks.signals import TaskSignals
from vidgate.tasks.transitions import Outcome, TaskTransitions

log = logging.getLogger(__name__)

MEDIA_TYPES = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "webp": "image/webp"}


@dataclass(frozen=True)
class Lease:
    task: Task
    expires_at: float


@dataclass(frozen=True)
class InputFile:
    size: int
    media_type: str
    chunks: Iterator[bytes]


class WorkerGateway:
    def __init__(
        self,
        transitions: TaskTransitions,
        signals: TaskSignals,
        registry: ModelRegistry,
        files: FileStore,
        *,
        poll_interval: float = 0.5,
        max_result_bytes: int = 2 * 1024**3,
    ) -> None:
        self.transitions = transitions
        self.signals = signals
        self.registry = registry
        self.db = transitions.db
        self.clock = transitions.clock
        self.files = files
        self.poll_interval = poll_interval
        self.max_result_bytes = max_result_bytes
        # Set when the server begins to stop: open claims answer "nothing" at once, so a
        # restart never waits for long polls.
        self.draining = asyncio.Event()

    def drain(self) -> None:
        self.draining.set()

    def served_models(self, names: Iterable[str]) -> list[str]:
        """The models of ``names`` this server knows, by their canonical names."""
        known: list[str] = []
        for name in names:
            try:
                known.append(self.registry.resolve(name).name)
            except InvalidRequest:
                continue
        if not known:
            raise InvalidRequest("None of these models is served here.", param="models")
        return sorted(set(known))

    async def claim(
        self,
        worker: str,
        models: list[str],
        wait: float,
        gone: Callable[[], Awaitable[bool]],
    ) -> Lease | None:
        """The oldest pending task of ``models``, waiting up to ``wait`` seconds for one."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while not self.draining.is_set():
            task = await self.transitions.claim(worker, models=models)
            if task is not None:
                if await gone():
                    # The worker hung up while this claim ran: nobody would run it.
                    await self.transitions.record(task, HandedBack(task.attempt))
                    return None
                return self._lease(task)
            left = deadline - loop.time()
            if left <= 0 or await gone():
                return None
            # Tasks created in this process wake the wait; others are seen at the next poll.
            await self.signals.wakeup.wait(min(left, self.poll_interval))
        return None

    def _lease(self, task: Task) -> Lease:
        return Lease(task, self.clock() + self.transitions.lease_seconds)

    async def held(self, task_id: str, attempt: int) -> Task:
        async with self.db.read() as conn:
            task = await task_rows.get_task(conn, task_id)
        if task is None:
            raise TaskNotFound(f"No task {task_id}.")
        if task.status is not TaskStatus.PROCESSING or task.attempt != attempt:
            raise _stale(task, attempt)
        return task

    async def heartbeat(self, task_id: str, attempt: int, progress: int | None) -> Lease:
        """Renew the lease (raising progress); the answer's task tells whether it is cancelled."""
        task = await self.held(task_id, attempt)
        if progress is not None:
            progress = min(99, max(1, progress))
        beat = await self.transitions.heartbeat(task, progress)
        if not beat.held:
            raise _stale(task, attempt)
        return self._lease(replace(task, cancel_requested=beat.cancel_requested))

    async def input(self, task_id: str, attempt: int, index: int) -> InputFile:
        task = await self.held(task_id, attempt)
        if not 0 <= index < len(task.image_keys):
            raise InvalidRequest(f"Task {task_id} has {len(task.image_keys)} input image(s).")
        key = task.image_keys[index]
        info = await asyncio.to_thread(self.files.stat, key)
        chunks = None
        if info is not None and info.size > 0:
            chunks = await asyncio.to_thread(self.files.open_range, key, 0, info.size - 1)
        if info is None or chunks is None:
            raise TaskNotFound(f"The input image {index} of task {task_id} is no longer stored.")
        media_type = MEDIA_TYPES.get(key.rpartition(".")[2], "application/octet-stream")
        return InputFile(info.size, media_type, chunks)

    async def accept_result(
        self, task_id: str, attempt: int, body: AsyncIterator[bytes], declared: int | None
    ) -> Task:
        """Stream the video to a scratch file, check it decodes, then finish the task with it.

        The answer is the finished task: completed, or failed when its owner cancelled it
        while it rendered.
        """
        task = await self.held(task_id, attempt)
        if declared is not None and declared > self.max_result_bytes:
            raise RequestTooLarge(f"A result is at most {self.max_result_bytes} bytes.")
        scratch = self.files.scratch_dir() / f"upload-{uuid.uuid4().hex}.mp4"
        try:
            await self._receive(body, scratch)
            try:
                info = await asyncio.to_thread(probe, scratch)
            except Exception as error:
                raise InvalidRequest(f"The result is not a playable video ({error}).") from None
            if info.frame_count < 1:
                raise InvalidRequest("The result has no video frames.")
            outcome = await self.transitions.complete(task, scratch)
        finally:
            scratch.unlink(missing_ok=True)
        done = _written(outcome, task, attempt)
        log.info("task %s: attempt %d delivered its video (%s)", task.id, attempt, done.status)
        return done

    async def _receive(self, body: AsyncIterator[bytes], target: Path) -> None:
        received = 0
        # Chunks are small (~64 KB) and land in the page cache: writing them inline costs less
        # than a thread hop each; put_file fsyncs the whole file later.
        with target.open("wb") as handle:
            async for chunk in body:
                received += len(chunk)
                if received > self.max_result_bytes:
                    raise RequestTooLarge(f"A result is at most {self.max_result_bytes} bytes.")
                handle.write(chunk)
        if received == 0:
            raise InvalidRequest("The result upload is empty.")

    async def fail(
        self, task_id: str, attempt: int, code: str, message: str, *, retryable: bool
    ) -> Task:
        """Fail the attempt: retryable failures go back to the queue until the model's attempt
        limit; the others fail the task with ``code``."""
        task = await self.held(task_id, attempt)
        event = lifecycle.failure(attempt, code, message, retryable=retryable)
        return _written(await self.transitions.record(task, event), task, attempt)

    async def hand_back(self, task_id: str, attempt: int) -> None:
        task = await self.held(task_id, attempt)
        _written(await self.transitions.record(task, HandedBack(attempt)), task, attempt)


def _written(outcome: Outcome, task: Task, attempt: int) -> Task:
    """The task as the attempt's report left it; StaleAttempt when the report changed nothing
    (the attempt no longer holds the task)."""
    if outcome.done is None:
        raise _stale(outcome.task or task, attempt)
    return outcome.done


def _stale(task: Task, attempt: int) -> StaleAttempt:
    if task.status is TaskStatus.PROCESSING:
        why = f"it is attempt {task.attempt} now"
    else:
        why = f"it is {task.status.value}"
    return StaleAttempt(f"Attempt {attempt} no longer holds task {task.id}: {why}.")
