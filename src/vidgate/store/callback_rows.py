"""SQL for the callback outbox: enqueue with the task's finish, claim due ones, log attempts."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, and_, case, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from vidgate.store.notices import notify
from vidgate.store.tables import accounts, callback_attempts, callbacks
from vidgate.webhooks.model import Attempt, Callback, Secrets


def _callback(row: Row[Any]) -> Callback:
    m = row._mapping
    return Callback(
        m["id"],
        m["task_id"],
        m["account_id"],
        m["url"],
        m["payload"],
        m["status"],
        m["attempts"],
        m["next_attempt_at"],
        m["lease_token"],
    )


async def enqueue(
    conn: AsyncConnection,
    *,
    callback_id: str,
    task_id: str,
    account_id: str,
    url: str,
    payload: str,
    now: float,
) -> None:
    await conn.execute(
        insert(callbacks).values(
            id=callback_id,
            task_id=task_id,
            account_id=account_id,
            url=url,
            payload=payload,
            status="pending",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
            updated_at=now,
        )
    )
    await notify(conn, "callbacks")


def _due(now: float) -> Any:
    return and_(
        callbacks.c.status == "pending",
        callbacks.c.next_attempt_at <= now,
        or_(callbacks.c.lease_until.is_(None), callbacks.c.lease_until < now),
    )


async def claim_due(
    conn: AsyncConnection, *, token: str, now: float, lease_seconds: float, limit: int
) -> list[Callback]:
    """Lease up to ``limit`` due callbacks to the caller (``token``), oldest due first."""
    pick = (
        select(callbacks.c.id).where(_due(now)).order_by(callbacks.c.next_attempt_at).limit(limit)
    )
    if conn.dialect.name == "postgresql":
        pick = pick.with_for_update(skip_locked=True)
    ids = [row[0] for row in await conn.execute(pick)]
    if not ids:
        return []
    rows = await conn.execute(
        update(callbacks)
        .where(callbacks.c.id.in_(ids), _due(now))
        .values(lease_token=token, lease_until=now + lease_seconds, updated_at=now)
        .returning(*callbacks.c)
    )
    return [_callback(row) for row in rows]


async def next_due_at(conn: AsyncConnection) -> float | None:
    """When the next pending callback may be claimed: a leased one not before its lease ends."""
    lease_until = func.coalesce(callbacks.c.lease_until, 0.0)
    claimable = case(
        (lease_until > callbacks.c.next_attempt_at, lease_until), else_=callbacks.c.next_attempt_at
    )
    value = (
        await conn.execute(select(func.min(claimable)).where(callbacks.c.status == "pending"))
    ).scalar()
    return float(value) if value is not None else None


async def record_attempt(
    conn: AsyncConnection,
    callback: Callback,
    *,
    attempt: Attempt,
    status: str,
    next_attempt_at: float,
    now: float,
) -> bool:
    """Log the attempt and move the callback on, only while the caller still holds its lease."""
    result = await conn.execute(
        update(callbacks)
        .where(callbacks.c.id == callback.id, callbacks.c.lease_token == callback.lease_token)
        .values(
            status=status,
            attempts=callbacks.c.attempts + 1,
            next_attempt_at=next_attempt_at,
            lease_token=None,
            lease_until=None,
            updated_at=now,
            delivered_at=now if status == "delivered" else None,
        )
    )
    if not result.rowcount:
        return False
    await conn.execute(
        insert(callback_attempts).values(
            callback_id=callback.id,
            number=attempt.number,
            started_at=attempt.started_at,
            duration_ms=attempt.duration_ms,
            status_code=attempt.status_code,
            error=attempt.error,
            succeeded=attempt.succeeded,
        )
    )
    return True


async def for_task(conn: AsyncConnection, task_id: str) -> Callback | None:
    row = (await conn.execute(select(callbacks).where(callbacks.c.task_id == task_id))).first()
    return _callback(row) if row else None


async def attempts_of(conn: AsyncConnection, callback_id: str) -> list[Attempt]:
    rows = await conn.execute(
        select(callback_attempts)
        .where(callback_attempts.c.callback_id == callback_id)
        .order_by(callback_attempts.c.id)
    )
    return [
        Attempt(r.number, r.started_at, r.duration_ms, r.status_code, r.error, bool(r.succeeded))
        for r in rows
    ]


async def count_attempts(conn: AsyncConnection, callback_id: str) -> int:
    value = (
        await conn.execute(
            select(func.count()).where(callback_attempts.c.callback_id == callback_id)
        )
    ).scalar()
    return int(value or 0)


async def redeliver(conn: AsyncConnection, callback_id: str, *, now: float) -> None:
    """Send again from the start: a fresh run of attempts, the same webhook-id."""
    await conn.execute(
        update(callbacks)
        .where(callbacks.c.id == callback_id)
        .values(
            status="pending",
            attempts=0,
            next_attempt_at=now,
            lease_token=None,
            lease_until=None,
            updated_at=now,
        )
    )
    await notify(conn, "callbacks")


async def get_secrets(conn: AsyncConnection, account_id: str) -> Secrets:
    row = (
        await conn.execute(
            select(
                accounts.c.webhook_secret,
                accounts.c.previous_webhook_secret,
                accounts.c.previous_secret_expires_at,
            ).where(accounts.c.id == account_id)
        )
    ).first()
    if row is None:
        return Secrets(None, None, None)
    return Secrets(row[0], row[1], row[2])


async def set_first_secret(conn: AsyncConnection, account_id: str, secret: str) -> bool:
    """Give the account its first signing secret; False when it already has one."""
    result = await conn.execute(
        update(accounts)
        .where(accounts.c.id == account_id, accounts.c.webhook_secret.is_(None))
        .values(webhook_secret=secret)
    )
    return bool(result.rowcount)


async def rotate_secret(
    conn: AsyncConnection, account_id: str, secret: str, *, previous_expires_at: float
) -> None:
    """Make ``secret`` the current one and the current one the previous, in one statement (the
    right-hand sides read the row as it was), so two rotations at once each keep the other's."""
    await conn.execute(
        update(accounts)
        .where(accounts.c.id == account_id)
        .values(
            webhook_secret=secret,
            previous_webhook_secret=accounts.c.webhook_secret,
            previous_secret_expires_at=previous_expires_at,
        )
    )


async def counts_by_status(conn: AsyncConnection) -> dict[str, int]:
    rows = await conn.execute(select(callbacks.c.status, func.count()).group_by(callbacks.c.status))
    return {row[0]: int(row[1]) for row in rows}
