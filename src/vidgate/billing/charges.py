"""When a task is charged: its price reserved as it is created, and at its end captured (a
completed task) or released (any other ending). Both run inside the caller's transaction, the
one that creates or ends the task, so a task exists exactly when its credits are reserved and
ends exactly when they are settled."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from vidgate.store import ledger_rows
from vidgate.store.database import Conn
from vidgate.tasks.model import Task


async def reserve(conn: Conn, task: Task, *, now: float) -> bool:
    """Hold the task's price on its account; False when the account has too little."""
    return await ledger_rows.reserve(conn, task.account_id, task.id, task.credits_cents, now=now)


async def settle(conn: AsyncConnection, task: Task, *, captured: bool, now: float) -> None:
    """Capture the reservation (the video was made) or release it (it was not)."""
    await ledger_rows.settle(
        conn, task.account_id, task.id, task.credits_cents, captured=captured, now=now
    )
