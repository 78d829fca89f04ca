"""SQL for accounts, API keys, the credit ledger and server-wide state."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from vidgate.store.tables import accounts, api_keys, ledger_entries, server_state


@dataclass(frozen=True)
class Principal:
    """Who a request is from: the account behind a valid, live API key."""

    account_id: str
    key_id: str
    user_group: str
    is_admin: bool


async def insert_account(
    conn: AsyncConnection,
    *,
    account_id: str,
    name: str,
    now: float,
    is_admin: bool = False,
    user_group: str = "default",
) -> None:
    await conn.execute(
        insert(accounts).values(
            id=account_id,
            name=name,
            user_group=user_group,
            is_admin=is_admin,
            balance_cents=0,
            created_at=now,
        )
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


async def principal_for_key(
    conn: AsyncConnection, key_hash: str, *, now: float
) -> Principal | None:
    row = (
        await conn.execute(
            select(
                api_keys.c.id,
                api_keys.c.account_id,
                api_keys.c.expires_at,
                api_keys.c.revoked_at,
                accounts.c.user_group,
                accounts.c.is_admin,
            )
            .join(accounts, accounts.c.id == api_keys.c.account_id)
            .where(api_keys.c.key_hash == key_hash)
        )
    ).first()
    if row is None or row.revoked_at is not None:
        return None
    if row.expires_at is not None and row.expires_at <= now:
        return None
    return Principal(row.account_id, row.id, row.user_group, bool(row.is_admin))


async def account_exists(conn: AsyncConnection, name: str) -> bool:
    return (
        await conn.execute(select(accounts.c.id).where(accounts.c.name == name))
    ).first() is not None


async def balance_cents(conn: AsyncConnection, account_id: str) -> int:
    value = (
        await conn.execute(select(accounts.c.balance_cents).where(accounts.c.id == account_id))
    ).scalar()
    return int(value or 0)


LedgerKind = Literal["topup", "reserve", "capture", "release", "adjustment"]


async def _append(
    conn: AsyncConnection,
    *,
    account_id: str,
    kind: LedgerKind,
    amount_cents: int,
    credits_cents: int,
    now: float,
    task_id: str | None = None,
    reason: str | None = None,
) -> None:
    phase = {"reserve": "reserve", "capture": "settle", "release": "settle"}.get(kind)
    await conn.execute(
        insert(ledger_entries).values(
            account_id=account_id,
            task_id=task_id,
            kind=kind,
            phase=phase,
            amount_cents=amount_cents,
            credits_cents=credits_cents,
            reason=reason,
            created_at=now,
        )
    )


async def top_up(
    conn: AsyncConnection, account_id: str, cents: int, *, now: float, reason: str | None = None
) -> None:
    if cents <= 0:
        raise ValueError("a top-up adds a positive amount")
    await conn.execute(
        update(accounts)
        .where(accounts.c.id == account_id)
        .values(balance_cents=accounts.c.balance_cents + cents)
    )
    await _append(
        conn,
        account_id=account_id,
        kind="topup",
        amount_cents=cents,
        credits_cents=cents,
        now=now,
        reason=reason,
    )


async def reserve(
    conn: AsyncConnection, account_id: str, task_id: str, cents: int, *, now: float
) -> bool:
    """Take ``cents`` from the balance for a task; False (and nothing written) when short."""
    result = await conn.execute(
        update(accounts)
        .where(accounts.c.id == account_id, accounts.c.balance_cents >= cents)
        .values(balance_cents=accounts.c.balance_cents - cents)
    )
    if result.rowcount != 1:
        return False
    await _append(
        conn,
        account_id=account_id,
        kind="reserve",
        amount_cents=-cents,
        credits_cents=cents,
        task_id=task_id,
        now=now,
    )
    return True


async def settle(
    conn: AsyncConnection,
    account_id: str,
    task_id: str,
    cents: int,
    *,
    captured: bool,
    now: float,
) -> None:
    """Capture (completed) or release (failed, cancelled) a task's reservation, once.

    Callers reach this only after winning the task's terminal compare-and-set; the ledger's
    unique (task, phase) pair makes a second settlement fail loudly rather than pay twice.
    """
    if not captured:
        await conn.execute(
            update(accounts)
            .where(accounts.c.id == account_id)
            .values(balance_cents=accounts.c.balance_cents + cents)
        )
    await _append(
        conn,
        account_id=account_id,
        kind="capture" if captured else "release",
        amount_cents=0 if captured else cents,
        credits_cents=cents,
        task_id=task_id,
        now=now,
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
