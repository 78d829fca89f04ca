"""SQL for worker tokens: insert, list, find by hash, touch, revoke."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from vidgate.auth.model import WorkerTokenRecord
from vidgate.store.tables import worker_tokens


def _record(row: Row[Any]) -> WorkerTokenRecord:
    m = row._mapping
    return WorkerTokenRecord(
        id=m["id"],
        name=m["name"],
        prefix=m["prefix"],
        created_at=m["created_at"],
        last_used_at=m["last_used_at"],
        revoked_at=m["revoked_at"],
    )


async def insert_token(
    conn: AsyncConnection, *, token_id: str, name: str, prefix: str, token_hash: str, now: float
) -> None:
    await conn.execute(
        insert(worker_tokens).values(
            id=token_id, name=name, prefix=prefix, token_hash=token_hash, created_at=now
        )
    )


async def get_token(conn: AsyncConnection, token_id: str) -> WorkerTokenRecord | None:
    row = (await conn.execute(select(worker_tokens).where(worker_tokens.c.id == token_id))).first()
    return _record(row) if row else None


async def list_tokens(conn: AsyncConnection) -> list[WorkerTokenRecord]:
    rows = await conn.execute(
        select(worker_tokens).order_by(worker_tokens.c.created_at, worker_tokens.c.id)
    )
    return [_record(row) for row in rows]


async def find_active(conn: AsyncConnection, token_hash: str) -> WorkerTokenRecord | None:
    """The token with this hash, unless it was revoked."""
    row = (
        await conn.execute(
            select(worker_tokens).where(
                worker_tokens.c.token_hash == token_hash, worker_tokens.c.revoked_at.is_(None)
            )
        )
    ).first()
    return _record(row) if row else None


async def touch_token(conn: AsyncConnection, token_id: str, *, now: float) -> None:
    await conn.execute(
        update(worker_tokens).where(worker_tokens.c.id == token_id).values(last_used_at=now)
    )


async def revoke_token(conn: AsyncConnection, token_id: str, *, now: float) -> bool:
    result = await conn.execute(
        update(worker_tokens)
        .where(worker_tokens.c.id == token_id, worker_tokens.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return bool(result.rowcount)
