"""A task's callback as its owner sees it: the delivery, its attempts, and redelivery."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from vidgate.errors import Conflict
from vidgate.store import callback_rows
from vidgate.store.database import Database
from vidgate.tasks.model import Task
from vidgate.webhooks.model import Attempt, Callback


@dataclass(frozen=True)
class Delivery:
    callback: Callback | None
    attempts: list[Attempt]


class CallbackService:
    """Callbacks of tasks the caller owns: the route reads the task for its owner first."""

    def __init__(
        self,
        db: Database,
        notify: Callable[[], None],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.notify = notify
        self.clock = clock

    async def delivery(self, task: Task) -> Delivery:
        async with self.db.read() as conn:
            callback = await callback_rows.for_task(conn, task.id)
            attempts = await callback_rows.attempts_of(conn, callback.id) if callback else []
        return Delivery(callback, attempts)

    async def redeliver(self, task: Task) -> Delivery:
        if task.callback_url is None:
            raise Conflict(f"Task {task.id} has no callback_url; there is nothing to send.")
        async with self.db.write() as conn:
            callback = await callback_rows.for_task(conn, task.id)
            if callback is None:
                raise Conflict(
                    f"Task {task.id} has not finished; its callback is sent when it does."
                )
            await callback_rows.redeliver(conn, callback.id, now=self.clock())
        self.notify()
        return await self.delivery(task)
