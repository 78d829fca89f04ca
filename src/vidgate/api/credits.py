"""``GET /v1/credits`` (evolink's shape) and ``GET /v1/ledger`` (the caller's entries, paged)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from vidgate.api.deps import LedgerDep, PrincipalDep
from vidgate.billing.ledger import EntryPage
from vidgate.billing.model import cents_to_credits

router = APIRouter(tags=["credits"])


class CreditBalance(BaseModel):
    remaining_credits: float
    used_credits: float
    reserved_credits: float


class TokenBalance(CreditBalance):
    unlimited_credits: bool


class CreditData(BaseModel):
    user: CreditBalance
    token: TokenBalance


class CreditsResponse(BaseModel):
    success: bool
    message: str
    data: CreditData


class LedgerEntryOut(BaseModel):
    id: int
    kind: str
    amount: float
    credits: float
    balance_after: float | None
    task_id: str | None
    reason: str | None
    created: int


class LedgerPage(BaseModel):
    object: str = "list"
    data: list[LedgerEntryOut]
    has_more: bool
    next_cursor: str | None


def _credits(cents: int) -> float:
    return float(cents_to_credits(cents))


@router.get("/v1/credits", response_model=CreditsResponse)
async def get_credits(principal: PrincipalDep, ledger: LedgerDep) -> dict[str, Any]:
    account, key = await ledger.summary(principal)
    return {
        "success": True,
        "message": "",
        "data": {
            "user": {
                "remaining_credits": _credits(account.remaining_cents),
                "used_credits": _credits(account.used_cents),
                "reserved_credits": _credits(account.reserved_cents),
            },
            # Keys carry no credit cap of their own: what a key can spend is the account's.
            "token": {
                "remaining_credits": _credits(account.remaining_cents),
                "used_credits": _credits(key.used_cents),
                "reserved_credits": _credits(key.reserved_cents),
                "unlimited_credits": True,
            },
        },
    }


def ledger_page(page: EntryPage) -> LedgerPage:
    return LedgerPage(
        data=[
            LedgerEntryOut(
                id=entry.id,
                kind=entry.kind,
                amount=_credits(entry.amount_cents),
                credits=_credits(entry.credits_cents),
                balance_after=None
                if entry.balance_after_cents is None
                else _credits(entry.balance_after_cents),
                task_id=entry.task_id,
                reason=entry.reason,
                created=int(entry.created_at),
            )
            for entry in page.entries
        ],
        has_more=page.next_cursor is not None,
        next_cursor=page.next_cursor,
    )


@router.get("/v1/ledger", response_model=LedgerPage)
async def get_ledger(
    principal: PrincipalDep,
    ledger: LedgerDep,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> LedgerPage:
    """The caller's ledger entries, newest first; pass ``next_cursor`` back for the next page."""
    page = await ledger.entries(principal.account_id, cursor=cursor, limit=limit)
    return ledger_page(page)
