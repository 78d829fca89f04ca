"""The worker's side of a task: claim with a lease, heartbeat, finish, hand back, retry."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncConnection

from vidgate.store import task_rows
from vidgate.store.task_rows import Heartbeat
from vidgate.tasks.model import Task, TaskError, TaskStatus
from vidgate.tasks.service import CANCELLED_MESSAGE, TaskService

log = logging.getLogger(__name__)


class TaskRuns:
    """Every write a worker makes names the attempt it holds; a stale attempt's is refused."""

    def __init__(self, tasks: TaskService, *, lease_seconds: float = 60.0) -> None:
        self.tasks = tasks
        self.lease_seconds = lease_seconds

    async def claim(
        self,
        worker: str,
        engines: Collection[str] | None = None,
        *,
        models: Collection[str] | None = None,
    ) -> Task | None:
        async with self.tasks.db.write() as conn:
            task = await task_rows.claim_task(
                conn,
                worker=worker,
                now=self.tasks.clock(),
                lease_seconds=self.lease_seconds,
                engines=engines,
                max_run_seconds=self.tasks.max_run_seconds,
                models=models,
            )
        if task is not None:
            log.info("task %s claimed by %s (attempt %d)", task.id, worker, task.attempt)
            self.tasks.changed(task.id)
        return task

    async def heartbeat(self, task: Task, progress: int | None = None) -> Heartbeat:
        async with self.tasks.db.write() as conn:
            beat = await task_rows.heartbeat(
                conn,
                task.id,
                task.attempt,
                now=self.tasks.clock(),
                lease_seconds=self.lease_seconds,
                progress=progress,
            )
        if progress is not None:
            self.tasks.changed(task.id)
        return beat

    async def complete(self, task: Task, output: Path) -> Task | None:
        """Store the video and finish the task; None when this attempt no longer holds it.

        A task whose cancel was requested while it rendered ends cancelled, not completed:
        the owner was told it would stop and is not charged for it.
        """
        # One file per attempt: a late attempt never overwrites or deletes the winner's video.
        key = f"results/{task.id}-{task.attempt}.mp4"
        await asyncio.to_thread(self.tasks.files.put_file, key, output)
        done = await self.tasks.finish(
            task, TaskStatus.COMPLETED, attempt=task.attempt, result_key=key
        )
        if done is None:
            await asyncio.to_thread(self.tasks.files.delete_prefix, key)
            done = await self.fail(task, "request_cancelled", CANCELLED_MESSAGE)
        return done

    async def fail(self, task: Task, code: str, message: str) -> Task | None:
        error = TaskError(code, message)
        return await self.tasks.finish(task, TaskStatus.FAILED, attempt=task.attempt, error=error)

    async def hand_back(self, task: Task) -> bool:
        """Return a held task to the queue without using up an attempt (graceful shutdown)."""
        async with self.tasks.db.write() as conn:
            handed = await task_rows.release_task(
                conn, task.id, task.attempt, now=self.tasks.clock(), counts=False
            )
        if handed:
            log.info("task %s handed back to the queue", task.id)
        return handed

    async def retry_or_fail(self, task: Task, reason: str) -> None:
        """An attempt ended without an answer (the engine crashed): again after a short
        backoff, or, at the model's attempt limit, failed with its credits released."""
        now = self.tasks.clock()
        async with self.tasks.db.write() as conn:
            await self.retry_or_fail_in(conn, task, reason, now, only_expired=False)
        self.tasks.changed(task.id)
        self.tasks.callbacks_due()
        self.tasks.wakeup.notify()

    async def retry_or_fail_in(
        self, conn: AsyncConnection, task: Task, reason: str, now: float, *, only_expired: bool
    ) -> bool:
        """True when the task went back to the queue, False when it failed (or was not held)."""
        limit = self.tasks.max_attempts(task.model)
        if task.retries + 1 >= limit:
            log.warning(
                "task %s: %s, attempt %d of %d; failing", task.id, reason, task.retries + 1, limit
            )
            error = TaskError(
                "service_error", f"The task could not be run: {reason}, {limit} times."
            )
            await self.tasks.finish_in(
                conn, task, TaskStatus.FAILED, task.attempt, now, error=error
            )
            return False
        backoff = min(60.0, float(2**task.retries))
        released = await task_rows.release_task(
            conn,
            task.id,
            task.attempt,
            now=now,
            only_expired=only_expired,
            available_at=now + backoff,
        )
        if released:
            log.warning("task %s: %s; back in the queue in %.0f s", task.id, reason, backoff)
        return released
