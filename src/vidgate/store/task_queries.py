"""SQL that reads tasks for people and sweeps: lists, queue positions, history, retention."""

from __future__ import annotations

from sqlalchemy import and_, bindparam, func, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from vidgate.store import prepared
from vidgate.store.database import Conn
from vidgate.store.prepared import Prepared
from vidgate.store.tables import tasks
from vidgate.store.task_rows import to_task
from vidgate.tasks.model import Task, TaskStatus


async def average_run_seconds(
    conn: AsyncConnection, model: str, *, limit: int = 20
) -> float | None:
    """The mean wall time of the model's most recent completed tasks on this server."""
    recent = (
        select((tasks.c.finished_at - tasks.c.created_at).label("took"))
        .where(tasks.c.model == model, tasks.c.status == TaskStatus.COMPLETED.value)
        .order_by(tasks.c.finished_at.desc())
        .limit(limit)
        .subquery()
    )
    value = (await conn.execute(select(func.avg(recent.c.took)))).scalar()
    return float(value) if value is not None else None


async def past_retention(conn: AsyncConnection, *, before: float, limit: int) -> list[Task]:
    """Finished tasks older than ``before`` that still have files; a batch, oldest first."""
    rows = await conn.execute(
        select(tasks)
        .where(
            tasks.c.status.in_((TaskStatus.COMPLETED.value, TaskStatus.FAILED.value)),
            tasks.c.finished_at < before,
            tasks.c.purged_at.is_(None),
        )
        .order_by(tasks.c.finished_at)
        .limit(limit)
    )
    return [to_task(row) for row in rows]


async def mark_purged(conn: AsyncConnection, task_ids: list[str], *, now: float) -> None:
    await conn.execute(
        update(tasks)
        .where(tasks.c.id.in_(task_ids))
        .values(purged_at=now, result_key=None, image_keys=[], updated_at=now)
    )


async def list_tasks(
    conn: AsyncConnection,
    account_id: str,
    *,
    limit: int,
    before: tuple[float, str] | None = None,
    status: str | None = None,
    model: str | None = None,
) -> list[Task]:
    """The account's tasks, newest first, starting after the ``before`` (created_at, id) key."""
    query = select(tasks).where(tasks.c.account_id == account_id, tasks.c.purged_at.is_(None))
    if before is not None:
        created, task_id = before
        query = query.where(
            or_(
                tasks.c.created_at < created,
                and_(tasks.c.created_at == created, tasks.c.id < task_id),
            )
        )
    if status is not None:
        query = query.where(tasks.c.status == status)
    if model is not None:
        query = query.where(tasks.c.model == model)
    rows = await conn.execute(
        query.order_by(tasks.c.created_at.desc(), tasks.c.id.desc()).limit(limit)
    )
    return [to_task(row) for row in rows]


# Built once: every create and every poll of a pending task counts. The (created_at, id) row
# comparison is a range of ix_tasks_queue, so only the tasks ahead are counted, in the index.
_QUEUE_AHEAD = Prepared(
    select(func.count())
    .select_from(tasks)
    .where(
        tasks.c.status == TaskStatus.PENDING.value,
        tasks.c.engine == bindparam("engine"),
        tuple_(tasks.c.created_at, tasks.c.id)
        < tuple_(
            bindparam("created", type_=tasks.c.created_at.type),
            bindparam("id", type_=tasks.c.id.type),
        ),
    )
)


async def queue_position(conn: Conn, task: Task) -> int:
    """1 for the next task a worker of its engine will take, 2 for the one after, ..."""
    ahead = await prepared.scalar(
        conn, _QUEUE_AHEAD, {"engine": task.engine, "created": task.created_at, "id": task.id}
    )
    return int(ahead or 0) + 1


TaskCounts = dict[tuple[str, str], int]


async def unfinished_counts(conn: AsyncConnection) -> TaskCounts:
    """(model, status) -> how many tasks are pending or processing: the queue, no more."""
    rows = await conn.execute(
        select(tasks.c.model, tasks.c.status, func.count())
        .where(tasks.c.status.in_((TaskStatus.PENDING.value, TaskStatus.PROCESSING.value)))
        .group_by(tasks.c.model, tasks.c.status)
    )
    return {(row[0], row[1]): int(row[2]) for row in rows}


async def finished_counts(
    conn: AsyncConnection, *, after: float | None = None, until: float | None = None
) -> TaskCounts:
    """(model, status) -> how many tasks finished in (``after``, ``until``], purged or not: a
    range of ix_tasks_finished."""
    query = select(tasks.c.model, tasks.c.status, func.count()).where(
        tasks.c.status.in_((TaskStatus.COMPLETED.value, TaskStatus.FAILED.value))
    )
    if after is not None:
        query = query.where(tasks.c.finished_at > after)
    if until is not None:
        query = query.where(tasks.c.finished_at <= until)
    rows = await conn.execute(query.group_by(tasks.c.model, tasks.c.status))
    return {(row[0], row[1]): int(row[2]) for row in rows}


async def oldest_pending_created_at(conn: AsyncConnection) -> float | None:
    value = (
        await conn.execute(
            select(func.min(tasks.c.created_at)).where(tasks.c.status == TaskStatus.PENDING.value)
        )
    ).scalar()
    return float(value) if value is not None else None
