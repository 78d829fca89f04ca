"""Money: credits and the integer hundredths the ledger counts in, ledger entries and an
account's summary (``store.ledger_rows`` maps rows to these)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

LedgerKind = Literal["topup", "reserve", "capture", "release", "adjustment"]


@dataclass(frozen=True)
class LedgerEntry:
    id: int
    account_id: str
    kind: LedgerKind
    amount_cents: int
    credits_cents: int
    balance_after_cents: int | None
    task_id: str | None
    reason: str | None
    created_at: float


@dataclass(frozen=True)
class CreditSummary:
    remaining_cents: int
    reserved_cents: int
    used_cents: int


def cents_to_credits(cents: int) -> Decimal:
    return (Decimal(cents) / 100).quantize(Decimal("0.01"))


def credits_to_cents(credits: Decimal | int | str) -> int:
    return int((Decimal(str(credits)) * 100).to_integral_value())
