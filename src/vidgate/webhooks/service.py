"""A task's callback as its owner sees it: the delivery, its attempts, and redelivery."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from vidgate.errors import Conflict
from vidgate.store import callback_rows
from vidgate.store.account_rows import Principal
from vidgate.store.callback_rows import Attempt, Callback
from vidgate.store.database import Database
from vidgate.tasks.service import TaskService


@dataclass(frozen=True)
class Delivery:
    callback: Callback | None
    attempts: list[Attempt]


class CallbackService:
    def __init__(
        self,
        db: Database,
        tasks: TaskService,
        notify: Callable[[], None],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.tasks = tasks
        self.notify = notify
        self.clock = clock

    async def delivery(self, principal: Principal, task_id: str) -> Delivery:
        task = await self.tasks.get(principal, task_id)  # 404 unless the caller owns it
        async with self.db.read() as conn:
            callback = await callback_rows.for_task(conn, task.id)
            attempts = await callback_rows.attempts_of(conn, callback.id) if callback else []
        return Delivery(callback, attempts)

    async def redeliver(self, principal: Principal, task_id: str) -> Delivery:
        task = await self.tasks.get(principal, task_id)
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
        return await self.delivery(principal, task_id)
