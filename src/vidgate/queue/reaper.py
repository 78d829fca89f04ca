"""The sweeps: expired leases back to the queue, deadlines enforced, old tasks purged.

Safe in every process at once: each change is a compare-and-set that one sweep wins.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.ext.asyncio import AsyncConnection

from vidgate.queue.runs import TaskRuns
from vidgate.store import task_queries, task_rows
from vidgate.tasks.model import Task, TaskError, TaskStatus
from vidgate.tasks.service import CANCELLED_MESSAGE, TaskService

log = logging.getLogger(__name__)


class Reaper:
    def __init__(self, tasks: TaskService, runs: TaskRuns) -> None:
        self.tasks = tasks
        self.runs = runs

    async def reap(self) -> list[str]:
        """Tasks whose worker stopped renewing its lease go back to the queue (or fail at the
        attempt limit, or end cancelled when their owner asked); then deadlines are enforced.
        Returns the ids put back in the queue."""
        now = self.tasks.clock()
        requeued: list[str] = []
        async with self.tasks.db.write() as conn:
            lapsed = await task_rows.expired_leases(conn, now=now)
            for task in lapsed:
                if task.cancel_requested:
                    error = TaskError("request_cancelled", CANCELLED_MESSAGE)
                    await self.tasks.finish_in(
                        conn, task, TaskStatus.FAILED, task.attempt, now, error=error
                    )
                elif await self.runs.retry_or_fail_in(
                    conn, task, "its worker stopped renewing the lease", now, only_expired=True
                ):
                    requeued.append(task.id)
            overdue = await task_rows.overdue(conn, now=now)
            for task in overdue:
                await self._expire_in(conn, task, now)
        # After the commit: a callback the sweep enqueued is there when the dispatcher looks.
        for task in (*lapsed, *overdue):
            self.tasks.changed(task.id)
        if lapsed or overdue:
            self.tasks.callbacks_due()
        if requeued:
            self.tasks.wakeup.notify()
        return requeued

    async def purge_expired(self, retention_seconds: float, *, batch: int = 100) -> int:
        """Delete the files of tasks finished longer ago than retention; they then answer 404.

        Works in small batches, each its own short transaction, so no sweep holds a long lock.
        """
        purged = 0
        while True:
            now = self.tasks.clock()
            async with self.tasks.db.read() as conn:
                old = await task_queries.past_retention(
                    conn, before=now - retention_seconds, limit=batch
                )
            if not old:
                return purged
            for task in old:
                for key in (*task.image_keys, *([task.result_key] if task.result_key else [])):
                    await asyncio.to_thread(self.tasks.files.delete_prefix, key)
                await asyncio.to_thread(self.tasks.files.delete_prefix, f"inputs/{task.id}")
            async with self.tasks.db.write() as conn:
                await task_queries.mark_purged(conn, [task.id for task in old], now=now)
            purged += len(old)
            log.info("retention: purged %d finished task(s)", len(old))

    async def _expire_in(self, conn: AsyncConnection, task: Task, now: float) -> None:
        """Fail a task past a deadline: the client's (cancelled) or its model's run limit."""
        if task.deadline_at is not None and task.deadline_at < now:
            error = TaskError(
                "request_cancelled", "The task was cancelled: its Cancel-After deadline passed."
            )
        else:
            limit = self.tasks.max_run_seconds(task.model)
            error = TaskError(
                "generation_timeout", f"The video was not ready within {limit:.0f} seconds."
            )
        attempt = task.attempt if task.status is TaskStatus.PROCESSING else None
        if await self.tasks.finish_in(conn, task, TaskStatus.FAILED, attempt, now, error=error):
            log.warning("task %s: %s", task.id, error.message)
            if (stop := self.tasks.running.get(task.id)) is not None:
                stop.set()
