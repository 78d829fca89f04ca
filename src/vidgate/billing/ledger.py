"""The ledger service: top-ups, adjustments, the balance in evolink's shape, entries by cursor."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncConnection

from vidgate.auth.model import Principal
from vidgate.billing.model import CreditSummary, LedgerEntry, credits_to_cents
from vidgate.cursors import decode_cursor, encode_cursor
from vidgate.errors import InvalidRequest, NotFound
from vidgate.store import account_rows, ledger_rows
from vidgate.store.database import Database

MAX_PAGE = 100
# Far above any real purse, far below where integer hundredths stop being exact (2^63).
MAX_CREDITS_PER_ENTRY = Decimal(10**9)


@dataclass(frozen=True)
class EntryPage:
    entries: list[LedgerEntry]
    next_cursor: str | None


def encode_entry_cursor(entry_id: int) -> str:
    return encode_cursor("le", str(entry_id))


def decode_entry_cursor(cursor: str) -> int:
    [value] = decode_cursor("le", cursor, 1)
    if not value.isdigit():
        raise InvalidRequest("cursor is not one this server gave out.", param="cursor")
    return int(value)


class LedgerService:
    def __init__(self, db: Database, *, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.clock = clock

    async def top_up(self, account_ref: str, credits: Decimal, *, reason: str | None) -> int:
        cents = checked_cents(credits, "credits")
        async with self.db.write() as conn:
            account_id = await _account_id(conn, account_ref)
            await ledger_rows.top_up(conn, account_id, cents, now=self.clock(), reason=reason)
            return await ledger_rows.balance_cents(conn, account_id)

    async def adjust(self, account_ref: str, credits: Decimal, *, reason: str) -> int:
        """Add (positive) or take away (negative) credits, with the reason on the record."""
        if not reason.strip():
            raise InvalidRequest("An adjustment needs a reason.", param="reason")
        cents = checked_cents(credits, "credits", negative=True)
        async with self.db.write() as conn:
            account_id = await _account_id(conn, account_ref)
            if not await ledger_rows.adjust(
                conn, account_id, cents, now=self.clock(), reason=reason
            ):
                raise InvalidRequest(
                    "That adjustment would take the balance below zero (or out of range).",
                    param="credits",
                )
            return await ledger_rows.balance_cents(conn, account_id)

    async def summary(self, principal: Principal) -> tuple[CreditSummary, CreditSummary]:
        """The account's credits, and the same seen through the calling key's own tasks."""
        async with self.db.read() as conn:
            account = await ledger_rows.summary(conn, principal.account_id)
            key = await ledger_rows.summary(conn, principal.account_id, api_key_id=principal.key_id)
        return account, key

    async def entries(self, account_id: str, *, cursor: str | None, limit: int) -> EntryPage:
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidRequest(f"limit is from 1 to {MAX_PAGE}.", param="limit")
        before = decode_entry_cursor(cursor) if cursor else None
        async with self.db.read() as conn:
            rows = await ledger_rows.list_entries(
                conn, account_id, before_id=before, limit=limit + 1
            )
        page = rows[:limit]
        more = len(rows) > limit
        return EntryPage(page, encode_entry_cursor(page[-1].id) if more and page else None)


async def _account_id(conn: AsyncConnection, ref: str) -> str:
    account = await account_rows.find_account(conn, ref)
    if account is None:
        raise NotFound(f"No account {ref!r}.")
    return account.id


def checked_cents(amount: Decimal | int | str, param: str, *, negative: bool = False) -> int:
    """An amount of credits as exact hundredths: non-zero, at most two decimals, bounded."""
    credits = Decimal(str(amount))
    sign = "non-zero" if negative else "positive"
    if not credits.is_finite() or abs(credits) > MAX_CREDITS_PER_ENTRY:
        raise InvalidRequest(
            f"{param} is at most {MAX_CREDITS_PER_ENTRY:,} credits at a time.", param=param
        )
    cents = credits_to_cents(credits)
    if cents == 0 or (cents < 0 and not negative) or credits != Decimal(cents) / 100:
        raise InvalidRequest(f"{param} is a {sign} amount in hundredths of a credit.", param=param)
    return cents
