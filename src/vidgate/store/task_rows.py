"""SQL for tasks: insert, read, claim with a lease, fenced progress and finish, lease reaping."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any

from sqlalchemy import Row, Select, and_, bindparam, case, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from vidgate.store import prepared
from vidgate.store.database import Conn
from vidgate.store.notices import notify, notify_clause
from vidgate.store.prepared import Prepared
from vidgate.store.tables import tasks
from vidgate.tasks.model import Heartbeat, Task, TaskError, TaskStatus


def to_task(row: Row[Any]) -> Task:
    return task_from(row._mapping)


def task_from(m: Mapping[Any, Any]) -> Task:
    """A task from its row's columns by name."""
    error = TaskError(m["error_code"], m["error_message"] or "") if m["error_code"] else None
    return Task(
        id=m["id"],
        account_id=m["account_id"],
        model=m["model"],
        engine=m["engine"],
        status=TaskStatus(m["status"]),
        progress=m["progress"],
        prompt=m["prompt"],
        aspect_ratio=m["aspect_ratio"],
        image_keys=list(m["image_keys"]),
        callback_url=m["callback_url"],
        user_group=m["user_group"],
        credits_cents=m["credits_cents"],
        estimated_time=m["estimated_time"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        attempt=m["attempt"],
        started_at=m["started_at"],
        finished_at=m["finished_at"],
        cancel_requested=bool(m["cancel_requested"]),
        result_key=m["result_key"],
        error=error,
        extra=dict(m["extra"]),
        api_key_id=m["api_key_id"],
        retries=m["retries"],
        deadline_at=m["deadline_at"],
        run_deadline_at=m["run_deadline_at"],
    )


# The hot paths' statements, built once (a create inserts and counts; a poll reads).
_INSERT_TASK = insert(tasks)
_ANY_TASK = select(tasks).where(tasks.c.id == bindparam("id"), tasks.c.purged_at.is_(None))
_GET_TASK = Prepared(_ANY_TASK)
_GET_OWN_TASK = Prepared(_ANY_TASK.where(tasks.c.account_id == bindparam("account")))
_COUNT_ACTIVE = (
    select(func.count())
    .select_from(tasks)
    .where(
        tasks.c.account_id == bindparam("account"),
        tasks.c.status.in_((TaskStatus.PENDING.value, TaskStatus.PROCESSING.value)),
    )
)


async def insert_task(conn: Conn, task: Task) -> None:
    await conn.execute(
        _INSERT_TASK,
        {
            "id": task.id,
            "account_id": task.account_id,
            "api_key_id": task.api_key_id,
            "model": task.model,
            "engine": task.engine,
            "status": task.status.value,
            "progress": task.progress,
            "prompt": task.prompt,
            "aspect_ratio": task.aspect_ratio,
            "image_keys": task.image_keys,
            "callback_url": task.callback_url,
            "extra": task.extra,
            "user_group": task.user_group,
            "credits_cents": task.credits_cents,
            "estimated_time": task.estimated_time,
            "created_at": task.created_at,
            "updated_at": task.updated_at,
            "attempt": 0,
            "cancel_requested": False,
            "available_at": task.created_at,
            "retries": 0,
            "deadline_at": task.deadline_at,
        },
    )
    await notify(conn, "new")


async def get_task(conn: Conn, task_id: str, *, account_id: str | None = None) -> Task | None:
    if account_id is None:
        found = await prepared.first(conn, _GET_TASK, {"id": task_id})
    else:
        found = await prepared.first(conn, _GET_OWN_TASK, {"id": task_id, "account": account_id})
    return task_from(found) if found is not None else None


async def count_active(conn: Conn, account_id: str) -> int:
    """The account's unfinished tasks (pending or processing)."""
    value = (await conn.execute(_COUNT_ACTIVE, {"account": account_id})).scalar()
    return int(value or 0)


async def request_cancel(
    conn: AsyncConnection, task_id: str, attempt: int, *, now: float
) -> Task | None:
    """Flag a task processing under ``attempt``; its worker sees the flag at its next
    heartbeat. None when the task is no longer there as expected."""
    row = (
        await conn.execute(
            update(tasks)
            .where(_held(task_id, attempt), tasks.c.cancel_requested.is_(False))
            .values(cancel_requested=True, updated_at=now)
            .returning(*tasks.c)
        )
    ).first()
    if row is None:
        return None
    await notify(conn, "task", task_id)
    return to_task(row)


async def claim_task(
    conn: AsyncConnection,
    *,
    worker: str,
    now: float,
    lease_seconds: float,
    engines: Collection[str] | None = None,
    max_run_seconds: Callable[[str], float] = lambda model: 900.0,
    models: Collection[str] | None = None,
) -> Task | None:
    """Take the oldest pending task (of ``engines``, of ``models``): processing, a lease, the
    next attempt number, and a run deadline from its model."""
    pick = (
        select(tasks.c.id, tasks.c.model)
        .where(tasks.c.status == TaskStatus.PENDING.value, tasks.c.available_at <= now)
        .order_by(tasks.c.created_at, tasks.c.id)
        .limit(1)
    )
    if engines is not None:
        pick = pick.where(tasks.c.engine.in_(list(engines)))
    if models is not None:
        pick = pick.where(tasks.c.model.in_(list(models)))
    if conn.dialect.name == "postgresql":
        pick = pick.with_for_update(skip_locked=True)
    picked = (await conn.execute(pick)).first()
    if picked is None:
        return None
    task_id, model = picked
    row = (
        await conn.execute(
            update(tasks)
            .where(tasks.c.id == task_id, tasks.c.status == TaskStatus.PENDING.value)
            .values(
                status=TaskStatus.PROCESSING.value,
                attempt=tasks.c.attempt + 1,
                lease_owner=worker,
                lease_expires_at=now + lease_seconds,
                run_deadline_at=now + max_run_seconds(model),
                started_at=func.coalesce(tasks.c.started_at, now),
                # SPEC.md §3: a processing task shows 1..99.
                progress=case((tasks.c.progress < 1, 1), else_=tasks.c.progress),
                updated_at=now,
            )
            .returning(*tasks.c)
        )
    ).first()
    if row is None:
        return None
    await notify(conn, "task", task_id)
    return to_task(row)


async def heartbeat(
    conn: AsyncConnection,
    task_id: str,
    attempt: int,
    *,
    now: float,
    lease_seconds: float,
    progress: int | None = None,
) -> Heartbeat:
    """Renew the lease (and raise progress) only while this attempt still holds the task."""
    values: dict[str, Any] = {"lease_expires_at": now + lease_seconds, "updated_at": now}
    if progress is not None:
        # Progress never goes down, whatever order reports arrive in.
        values["progress"] = func.max(tasks.c.progress, progress)
        if conn.dialect.name == "postgresql":
            values["progress"] = func.greatest(tasks.c.progress, progress)
            # A heartbeat a second per task: notify waiters only when progress really moves.
            await conn.execute(
                select(notify_clause("task", tasks.c.id)).where(
                    _held(task_id, attempt), tasks.c.progress < progress
                )
            )
    row = (
        await conn.execute(
            update(tasks)
            .where(_held(task_id, attempt))
            .values(**values)
            .returning(tasks.c.cancel_requested)
        )
    ).first()
    if row is None:
        return Heartbeat(held=False)
    return Heartbeat(held=True, cancel_requested=bool(row[0]))


def _held(task_id: str, attempt: int) -> Any:
    return and_(
        tasks.c.id == task_id,
        tasks.c.status == TaskStatus.PROCESSING.value,
        tasks.c.attempt == attempt,
    )


async def finish_task(
    conn: AsyncConnection,
    task_id: str,
    *,
    now: float,
    status: TaskStatus,
    attempt: int | None,
    result_key: str | None = None,
    error: TaskError | None = None,
) -> Task | None:
    """Compare-and-set to a terminal status; None when the task was not in the expected state.

    With ``attempt`` the task must be processing under that attempt (a worker finishing);
    without it, the task must be pending (a cancel before any worker took it).
    """
    assert status.is_terminal
    if attempt is None:
        condition = and_(tasks.c.id == task_id, tasks.c.status == TaskStatus.PENDING.value)
    else:
        condition = _held(task_id, attempt)
    if status is TaskStatus.COMPLETED:
        # A cancel the owner was told about wins over a result that arrives after it.
        condition = and_(condition, tasks.c.cancel_requested.is_(False))
    values: dict[str, Any] = {
        "status": status.value,
        "finished_at": now,
        "updated_at": now,
        "lease_owner": None,
        "lease_expires_at": None,
    }
    if status is TaskStatus.COMPLETED:
        values.update(progress=100, result_key=result_key)
    if error is not None:
        values.update(error_code=error.code, error_message=error.message)
    row = (
        await conn.execute(update(tasks).where(condition).values(**values).returning(*tasks.c))
    ).first()
    if row is None:
        return None
    await notify(conn, "task", task_id)
    return to_task(row)


async def release_task(
    conn: AsyncConnection,
    task_id: str,
    attempt: int,
    *,
    now: float,
    only_expired: bool = False,
    counts: bool = True,
    available_at: float | None = None,
) -> Task | None:
    """Hand a held task back to the queue, fenced by its attempt (and, for the reaper, only
    if no heartbeat renewed the lease since it looked). ``counts``: the attempt is used up.
    The task as it is now, or None when the fence refused the write."""
    condition = _held(task_id, attempt)
    if only_expired:
        condition = and_(
            condition, or_(tasks.c.lease_expires_at.is_(None), tasks.c.lease_expires_at < now)
        )
    row = (
        await conn.execute(
            update(tasks)
            .where(condition)
            .values(
                status=TaskStatus.PENDING.value,
                lease_owner=None,
                lease_expires_at=None,
                run_deadline_at=None,
                retries=tasks.c.retries + (1 if counts else 0),
                available_at=now if available_at is None else available_at,
                updated_at=now,
            )
            .returning(*tasks.c)
        )
    ).first()
    if row is None:
        return None
    await notify(conn, "new")
    await notify(conn, "task", task_id)
    return to_task(row)


async def overdue(conn: AsyncConnection, *, now: float) -> list[Task]:
    """Unfinished tasks past the client's deadline, and running ones past their run limit."""
    unfinished = tasks.c.status.in_((TaskStatus.PENDING.value, TaskStatus.PROCESSING.value))
    query = select(tasks).where(
        or_(
            and_(unfinished, tasks.c.deadline_at < now),
            and_(
                tasks.c.status == TaskStatus.PROCESSING.value,
                tasks.c.run_deadline_at < now,
            ),
        )
    )
    rows = await conn.execute(_sweep(conn, query))
    return [to_task(row) for row in rows]


def _sweep(conn: AsyncConnection, query: Select[Any]) -> Select[Any]:
    """A sweep's rows in a fixed order; on PostgreSQL also locked, skipping those another
    replica's sweep (or a worker's write) holds: two sweeps never wait on each other."""
    query = query.order_by(tasks.c.id)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return query


async def expired_leases(conn: AsyncConnection, *, now: float) -> list[Task]:
    """Processing tasks whose worker stopped renewing its lease."""
    query = select(tasks).where(
        tasks.c.status == TaskStatus.PROCESSING.value,
        or_(tasks.c.lease_expires_at.is_(None), tasks.c.lease_expires_at < now),
    )
    rows = await conn.execute(_sweep(conn, query))
    return [to_task(row) for row in rows]
