"""SQL for Idempotency-Key records: claim a key, finish it with the answer, forget it."""

from __future__ import annotations

from sqlalchemy import and_, bindparam, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from vidgate.store.database import Conn
from vidgate.store.tables import idempotency_keys
from vidgate.tasks.model import IdempotencyRecord


async def find(conn: Conn, account_id: str, key: str, *, now: float) -> IdempotencyRecord | None:
    row = (
        await conn.execute(
            select(idempotency_keys).where(
                idempotency_keys.c.account_id == account_id,
                idempotency_keys.c.key == key,
                idempotency_keys.c.expires_at > now,
            )
        )
    ).first()
    if row is None:
        return None
    m = row._mapping
    return IdempotencyRecord(
        m["fingerprint"], m["status"], m["response_status"], m["response_body"], m["locked_until"]
    )


async def claim(
    conn: Conn,
    account_id: str,
    key: str,
    fingerprint: str,
    *,
    now: float,
    lock_seconds: float,
    ttl_seconds: float,
) -> bool:
    """Take the key for a new request: insert it, or take over one that expired or whose
    holder stopped (its lock ran out: the first request crashed before it answered)."""
    values = {
        "fingerprint": fingerprint,
        "status": "in_progress",
        "response_status": None,
        "response_body": None,
        "task_id": None,
        "locked_until": now + lock_seconds,
        "created_at": now,
        "expires_at": now + ttl_seconds,
    }
    taken = await conn.execute(
        update(idempotency_keys)
        .where(
            idempotency_keys.c.account_id == account_id,
            idempotency_keys.c.key == key,
            or_(
                idempotency_keys.c.expires_at <= now,
                and_(
                    idempotency_keys.c.status == "in_progress",
                    idempotency_keys.c.locked_until < now,
                    idempotency_keys.c.fingerprint == fingerprint,
                ),
            ),
        )
        .values(**values)
    )
    if taken.rowcount:
        return True
    try:
        async with conn.begin_nested():
            await conn.execute(
                insert(idempotency_keys).values(account_id=account_id, key=key, **values)
            )
    except IntegrityError:
        return False
    return True


_COMPLETE = (
    update(idempotency_keys)
    .where(
        idempotency_keys.c.account_id == bindparam("account"),
        idempotency_keys.c.key == bindparam("idempotency_key"),
    )
    .values(
        status="done",
        response_status=bindparam("answer_status"),
        response_body=bindparam("answer_body"),
        task_id=bindparam("answer_task"),
        locked_until=None,
    )
)


async def complete(
    conn: Conn,
    account_id: str,
    key: str,
    *,
    status: int,
    body: str,
    task_id: str | None,
) -> None:
    await conn.execute(
        _COMPLETE,
        {
            "account": account_id,
            "idempotency_key": key,
            "answer_status": status,
            "answer_body": body,
            "answer_task": task_id,
        },
    )


async def release(conn: Conn, account_id: str, key: str) -> None:
    """Forget an in-progress key whose request failed, so a retry runs afresh."""
    await conn.execute(
        delete(idempotency_keys).where(
            idempotency_keys.c.account_id == account_id,
            idempotency_keys.c.key == key,
            idempotency_keys.c.status == "in_progress",
        )
    )


async def delete_expired(conn: AsyncConnection, *, now: float) -> int:
    result = await conn.execute(
        delete(idempotency_keys).where(idempotency_keys.c.expires_at <= now)
    )
    return int(result.rowcount or 0)
