"""SQL for the credit ledger: append-only entries, and the balance they add up to.

The account row's ``balance_cents`` is the running sum of its entries' ``amount_cents``; the only
writers of either are the functions here, each changing both in the caller's transaction. The
row's CHECK (never negative) and the entries' UNIQUE (task, phase) are walls behind the code.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Row, bindparam, case, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from vidgate.billing.model import CreditSummary, LedgerEntry, LedgerKind
from vidgate.errors import InvalidRequest
from vidgate.store.database import Conn
from vidgate.store.tables import accounts, ledger_entries, tasks

# The CHECK keeps balances >= 0; this keeps them far inside the exact range of 64-bit cents.
MAX_BALANCE_CENTS = 10**13  # a hundred billion credits

_PHASE = {"reserve": "reserve", "capture": "settle", "release": "settle"}


def _entry(row: Row[Any]) -> LedgerEntry:
    m = row._mapping
    return LedgerEntry(
        m["id"],
        m["account_id"],
        m["kind"],
        m["amount_cents"],
        m["credits_cents"],
        m["balance_after_cents"],
        m["task_id"],
        m["reason"],
        m["created_at"],
    )


# Built once: the hot path (every create reserves) pays no statement construction.
_amount = bindparam("amount", type_=BigInteger)
_MOVE_BALANCE = (
    update(accounts)
    .where(
        accounts.c.id == bindparam("account"),
        accounts.c.balance_cents + _amount >= 0,
        accounts.c.balance_cents + _amount <= MAX_BALANCE_CENTS,
    )
    .values(balance_cents=accounts.c.balance_cents + _amount)
    .returning(accounts.c.balance_cents)
)
_INSERT_ENTRY = insert(ledger_entries)


async def _move(
    conn: Conn,
    account_id: str,
    amount_cents: int,
    *,
    kind: LedgerKind,
    credits_cents: int,
    now: float,
    task_id: str | None = None,
    reason: str | None = None,
) -> bool:
    """Change the balance by ``amount_cents`` and record it; False if it would leave range."""
    row = (
        await conn.execute(_MOVE_BALANCE, {"account": account_id, "amount": amount_cents})
    ).first()
    if row is None:
        return False
    await conn.execute(
        _INSERT_ENTRY,
        {
            "account_id": account_id,
            "task_id": task_id,
            "kind": kind,
            "phase": _PHASE.get(kind),
            "amount_cents": amount_cents,
            "credits_cents": credits_cents,
            "balance_after_cents": row[0],
            "reason": reason,
            "created_at": now,
        },
    )
    return True


async def top_up(
    conn: Conn, account_id: str, cents: int, *, now: float, reason: str | None = None
) -> None:
    if cents <= 0:
        raise ValueError("a top-up adds a positive amount")
    if not await _move(
        conn, account_id, cents, kind="topup", credits_cents=cents, now=now, reason=reason
    ):
        raise InvalidRequest("That top-up would take the balance out of range.", param="credits")


async def adjust(
    conn: AsyncConnection, account_id: str, cents: int, *, now: float, reason: str
) -> bool:
    """An admin's correction, up or down; False when it would take the balance out of range."""
    if cents == 0:
        raise ValueError("an adjustment changes the balance")
    return await _move(
        conn, account_id, cents, kind="adjustment", credits_cents=abs(cents), now=now, reason=reason
    )


async def reserve(conn: Conn, account_id: str, task_id: str, cents: int, *, now: float) -> bool:
    """Take a task's price from the balance; False (and nothing written) when short."""
    return await _move(
        conn, account_id, -cents, kind="reserve", credits_cents=cents, now=now, task_id=task_id
    )


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

    Callers reach this only after winning the task's terminal compare-and-set; the unique
    (task, phase) pair makes a second settlement fail loudly rather than pay twice.
    """
    await _move(
        conn,
        account_id,
        0 if captured else cents,
        kind="capture" if captured else "release",
        credits_cents=cents,
        now=now,
        task_id=task_id,
    )


async def balance_cents(conn: AsyncConnection, account_id: str) -> int:
    value = (
        await conn.execute(select(accounts.c.balance_cents).where(accounts.c.id == account_id))
    ).scalar()
    return int(value or 0)


async def summary(
    conn: AsyncConnection, account_id: str, *, api_key_id: str | None = None
) -> CreditSummary:
    """What remains, what is held for unfinished tasks, and what was spent (optionally by key)."""
    kind = ledger_entries.c.kind
    credits = ledger_entries.c.credits_cents
    query = select(
        func.coalesce(func.sum(case((kind == "reserve", credits), else_=0)), 0),
        func.coalesce(func.sum(case((kind.in_(("capture", "release")), credits), else_=0)), 0),
        func.coalesce(func.sum(case((kind == "capture", credits), else_=0)), 0),
    ).where(ledger_entries.c.account_id == account_id)
    if api_key_id is not None:
        query = query.join(tasks, tasks.c.id == ledger_entries.c.task_id).where(
            tasks.c.api_key_id == api_key_id
        )
    reserved, settled, used = (await conn.execute(query)).one()
    return CreditSummary(
        remaining_cents=await balance_cents(conn, account_id),
        reserved_cents=int(reserved) - int(settled),
        used_cents=int(used),
    )


async def list_entries(
    conn: AsyncConnection, account_id: str, *, before_id: int | None, limit: int
) -> list[LedgerEntry]:
    """The account's entries, newest first, starting below ``before_id`` (a cursor)."""
    query = select(ledger_entries).where(ledger_entries.c.account_id == account_id)
    if before_id is not None:
        query = query.where(ledger_entries.c.id < before_id)
    rows = await conn.execute(query.order_by(ledger_entries.c.id.desc()).limit(limit))
    return [_entry(row) for row in rows]


async def entries_sum(conn: AsyncConnection, account_id: str) -> int:
    value = (
        await conn.execute(
            select(func.coalesce(func.sum(ledger_entries.c.amount_cents), 0)).where(
                ledger_entries.c.account_id == account_id
            )
        )
    ).scalar()
    return int(value or 0)


async def settlements(conn: AsyncConnection, task_id: str) -> list[LedgerKind]:
    rows = await conn.execute(
        select(ledger_entries.c.kind).where(
            ledger_entries.c.task_id == task_id, ledger_entries.c.phase == "settle"
        )
    )
    return [row[0] for row in rows]
