"""SQL for accounts, user groups, API keys and server-wide state."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import Row, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from vidgate.auth.model import Account, GroupLimits, KeyRecord, Principal
from vidgate.errors import Conflict
from vidgate.store.database import Conn, upsert_insert
from vidgate.store.tables import accounts, api_keys, server_state, user_groups


def _group(row: Any, name: str) -> GroupLimits:
    if row is None or row.price_ratio is None:
        return GroupLimits(name)
    return GroupLimits(
        name,
        Decimal(row.price_ratio),
        row.rate_limit_per_minute,
        row.max_active_tasks,
    )


def _account(row: Row[Any]) -> Account:
    m = row._mapping
    return Account(
        m["id"],
        m["name"],
        m["user_group"],
        bool(m["is_admin"]),
        m["balance_cents"],
        m["created_at"],
    )


def _key(row: Row[Any]) -> KeyRecord:
    m = row._mapping
    return KeyRecord(
        m["id"],
        m["account_id"],
        m["name"],
        m["prefix"],
        m["created_at"],
        m["last_used_at"],
        m["expires_at"],
        m["revoked_at"],
    )


async def insert_account(
    conn: AsyncConnection,
    *,
    account_id: str,
    name: str,
    now: float,
    is_admin: bool = False,
    user_group: str = "default",
) -> None:
    """Raises Conflict when the name is taken (by a create that raced this one, too)."""
    inserted = await conn.execute(
        upsert_insert(conn, accounts)
        .values(
            id=account_id,
            name=name,
            user_group=user_group,
            is_admin=is_admin,
            balance_cents=0,
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=[accounts.c.name])
        .returning(accounts.c.id)
    )
    if inserted.first() is None:
        raise Conflict(f"An account named {name!r} already exists.")


async def find_account(conn: AsyncConnection, ref: str) -> Account | None:
    """An account by its id or by its name."""
    row = (
        await conn.execute(
            select(accounts).where(or_(accounts.c.id == ref, accounts.c.name == ref))
        )
    ).first()
    return _account(row) if row else None


async def list_accounts(conn: AsyncConnection) -> list[Account]:
    rows = await conn.execute(select(accounts).order_by(accounts.c.created_at, accounts.c.id))
    return [_account(row) for row in rows]


async def set_account_group(conn: AsyncConnection, account_id: str, group: str) -> None:
    await conn.execute(update(accounts).where(accounts.c.id == account_id).values(user_group=group))


async def get_group(conn: AsyncConnection, name: str) -> GroupLimits | None:
    row = (await conn.execute(select(user_groups).where(user_groups.c.name == name))).first()
    return _group(row, name) if row else None


async def list_groups(conn: AsyncConnection) -> list[GroupLimits]:
    rows = await conn.execute(select(user_groups).order_by(user_groups.c.name))
    return [_group(row, row.name) for row in rows]


async def upsert_group(conn: AsyncConnection, group: GroupLimits, *, now: float) -> None:
    values = {
        "price_ratio": str(group.price_ratio),
        "rate_limit_per_minute": group.rate_limit_per_minute,
        "max_active_tasks": group.max_active_tasks,
        "updated_at": now,
    }
    upsert = upsert_insert(conn, user_groups).values(name=group.name, created_at=now, **values)
    await conn.execute(
        upsert.on_conflict_do_update(index_elements=[user_groups.c.name], set_=values)
    )


async def insert_api_key(
    conn: AsyncConnection,
    *,
    key_id: str,
    account_id: str,
    name: str,
    prefix: str,
    key_hash: str,
    now: float,
    expires_at: float | None = None,
) -> None:
    await conn.execute(
        insert(api_keys).values(
            id=key_id,
            account_id=account_id,
            name=name,
            prefix=prefix,
            key_hash=key_hash,
            created_at=now,
            expires_at=expires_at,
        )
    )


async def list_keys(conn: AsyncConnection, account_id: str) -> list[KeyRecord]:
    rows = await conn.execute(
        select(api_keys)
        .where(api_keys.c.account_id == account_id)
        .order_by(api_keys.c.created_at, api_keys.c.id)
    )
    return [_key(row) for row in rows]


async def get_key(conn: AsyncConnection, key_id: str) -> KeyRecord | None:
    row = (await conn.execute(select(api_keys).where(api_keys.c.id == key_id))).first()
    return _key(row) if row else None


async def revoke_key(conn: AsyncConnection, key_id: str, *, now: float) -> bool:
    result = await conn.execute(
        update(api_keys)
        .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return bool(result.rowcount)


async def touch_key(conn: Conn, key_id: str, *, now: float) -> None:
    await conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(last_used_at=now))


async def principal_for_key(conn: Conn, key_hash: str, *, now: float) -> Principal | None:
    row = (
        await conn.execute(
            select(
                api_keys.c.id,
                api_keys.c.account_id,
                api_keys.c.expires_at,
                api_keys.c.revoked_at,
                api_keys.c.last_used_at,
                accounts.c.user_group,
                accounts.c.is_admin,
                user_groups.c.price_ratio,
                user_groups.c.rate_limit_per_minute,
                user_groups.c.max_active_tasks,
            )
            .join(accounts, accounts.c.id == api_keys.c.account_id)
            .outerjoin(user_groups, user_groups.c.name == accounts.c.user_group)
            .where(api_keys.c.key_hash == key_hash)
        )
    ).first()
    if row is None or row.revoked_at is not None:
        return None
    if row.expires_at is not None and row.expires_at <= now:
        return None
    return Principal(
        row.account_id,
        row.id,
        row.user_group,
        bool(row.is_admin),
        _group(row, row.user_group),
        row.last_used_at,
        row.expires_at,
    )


async def get_state(conn: AsyncConnection, key: str) -> str | None:
    return (
        await conn.execute(select(server_state.c.value).where(server_state.c.key == key))
    ).scalar()


async def claim_state(conn: AsyncConnection, key: str, value: str) -> bool:
    """Set ``key`` only if no one has: True for the one caller that set it."""
    try:
        async with conn.begin_nested():
            await conn.execute(insert(server_state).values(key=key, value=value))
    except IntegrityError:
        return False
    return True
