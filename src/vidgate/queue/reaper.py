"""The sweeps: expired leases back to the queue, deadlines enforced, old tasks purged.

Safe in every process at once: each change is a compare-and-set that one sweep wins. What a
swept task becomes is the lifecycle's decision; this module only finds the tasks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from vidgate.media.files import FileStore
from vidgate.store import task_queries, task_rows
from vidgate.store.database import Database
from vidgate.tasks import lifecycle
from vidgate.tasks.lifecycle import LeaseLapsed, Overdue, Requeue
from vidgate.tasks.transitions import TaskTransitions

log = logging.getLogger(__name__)


class Reaper:
    def __init__(
        self,
        db: Database,
        transitions: TaskTransitions,
        files: FileStore,
        *,
        clock: Callable[[], float],
    ) -> None:
        self.db = db
        self.transitions = transitions
        self.files = files
        self.clock = clock

    async def reap(self) -> list[str]:
        """Tasks whose worker stopped renewing its lease go back to the queue (or fail at the
        attempt limit, or end cancelled when their owner asked); then deadlines are enforced.
        Returns the ids put back in the queue."""
        requeued: list[str] = []
        async with self.transitions.sweep() as sweep:
            for task in await task_rows.expired_leases(sweep.conn, now=sweep.now):
                outcome = await sweep.apply(task, LeaseLapsed(task.attempt))
                if outcome.written and isinstance(outcome.decision, Requeue):
                    requeued.append(task.id)
            for task in await task_rows.overdue(sweep.conn, now=sweep.now):
                outcome = await sweep.apply(task, Overdue())
                if outcome.done is not None and outcome.done.error is not None:
                    log.warning("task %s: %s", task.id, outcome.done.error.message)
        return requeued

    async def purge_expired(self, retention_seconds: float, *, batch: int = 100) -> int:
        """Delete the files of tasks finished longer ago than retention; they then answer 404.

        Works in small batches, each its own short transaction, so no sweep holds a long lock.
        """
        purged = 0
        while True:
            now = self.clock()
            async with self.db.read() as conn:
                old = await task_queries.past_retention(
                    conn, before=now - retention_seconds, limit=batch
                )
            if not old:
                return purged
            for task in old:
                for key in lifecycle.purgeable_keys(task):
                    await asyncio.to_thread(self.files.delete_prefix, key)
            async with self.db.write() as conn:
                await task_queries.mark_purged(conn, [task.id for task in old], now=now)
            purged += len(old)
            log.info("retention: purged %d finished task(s)", len(old))
