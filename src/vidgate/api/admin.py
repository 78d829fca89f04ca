"""``/admin``: accounts, credits, keys and user groups, for admin keys only."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from vidgate.api.credits import LedgerPage, ledger_page
from vidgate.api.deps import AccountsDep, AdminDep, LedgerDep
from vidgate.api.keys import CreatedKeyOut, KeyCreate, KeyList, KeyOut, created_key_out, key_out
from vidgate.api.security_headers import no_store
from vidgate.auth.model import Account, GroupLimits
from vidgate.billing.model import cents_to_credits

router = APIRouter(prefix="/admin", tags=["admin"])

# The group limits' columns are INTEGER, 32 bits on PostgreSQL: a larger number is a 400 here,
# not an overflow in the driver.
INTEGER_MAX = 2**31 - 1


class AccountOut(BaseModel):
    id: str
    object: str = "account"
    name: str
    user_group: str
    is_admin: bool
    balance: float
    created: int


class CreatedAccountOut(AccountOut):
    key: str = Field(description="The account's first key: shown this once, never again.")


class AccountList(BaseModel):
    object: str = "list"
    data: list[AccountOut]


class AccountCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    credits: Decimal = Field(default=Decimal(0), ge=0, decimal_places=2)
    user_group: str = "default"
    is_admin: bool = False


class CreditChange(BaseModel):
    credits: Decimal = Field(decimal_places=2, description="Top-ups: > 0; adjustments: +/-")
    reason: str | None = Field(default=None, max_length=500)


class GroupSet(BaseModel):
    user_group: str


class GroupIn(BaseModel):
    price_ratio: Decimal = Field(ge=0, le=1000)
    rate_limit_per_minute: int | None = Field(default=None, ge=0, le=INTEGER_MAX)
    max_active_tasks: int | None = Field(default=None, ge=0, le=INTEGER_MAX)


class GroupOut(GroupIn):
    name: str
    object: str = "user_group"


class GroupList(BaseModel):
    object: str = "list"
    data: list[GroupOut]


def account_out(account: Account) -> AccountOut:
    return AccountOut(
        id=account.id,
        name=account.name,
        user_group=account.user_group,
        is_admin=account.is_admin,
        balance=float(cents_to_credits(account.balance_cents)),
        created=int(account.created_at),
    )


def group_out(group: GroupLimits) -> GroupOut:
    return GroupOut(
        name=group.name,
        price_ratio=group.price_ratio,
        rate_limit_per_minute=group.rate_limit_per_minute,
        max_active_tasks=group.max_active_tasks,
    )


@router.get("/accounts", response_model=AccountList)
async def list_accounts(_: AdminDep, accounts: AccountsDep) -> AccountList:
    return AccountList(data=[account_out(a) for a in await accounts.list_accounts()])


@router.post("/accounts", response_model=CreatedAccountOut, dependencies=[Depends(no_store)])
async def create_account(
    body: AccountCreate, _: AdminDep, accounts: AccountsDep
) -> CreatedAccountOut:
    created = await accounts.create_account(
        body.name, credits=body.credits, group=body.user_group, is_admin=body.is_admin
    )
    account = await accounts.get_account(created.account_id)
    return CreatedAccountOut(**account_out(account).model_dump(), key=created.key)


@router.get("/accounts/{account}", response_model=AccountOut)
async def get_account(account: str, _: AdminDep, accounts: AccountsDep) -> AccountOut:
    return account_out(await accounts.get_account(account))


@router.post("/accounts/{account}/topup", response_model=AccountOut)
async def top_up(
    account: str, body: CreditChange, _: AdminDep, accounts: AccountsDep, ledger: LedgerDep
) -> AccountOut:
    await ledger.top_up(account, body.credits, reason=body.reason)
    return account_out(await accounts.get_account(account))


@router.post("/accounts/{account}/adjustments", response_model=AccountOut)
async def adjust(
    account: str, body: CreditChange, _: AdminDep, ledger: LedgerDep, accounts: AccountsDep
) -> AccountOut:
    """Correct a balance up or down; the reason is kept on the ledger entry."""
    await ledger.adjust(account, body.credits, reason=body.reason or "")
    return account_out(await accounts.get_account(account))


@router.put("/accounts/{account}/group", response_model=AccountOut)
async def set_group(account: str, body: GroupSet, _: AdminDep, accounts: AccountsDep) -> AccountOut:
    return account_out(await accounts.set_group(account, body.user_group))


@router.get("/accounts/{account}/ledger", response_model=LedgerPage)
async def account_ledger(
    account: str,
    _: AdminDep,
    accounts: AccountsDep,
    ledger: LedgerDep,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> LedgerPage:
    found = await accounts.get_account(account)
    return ledger_page(await ledger.entries(found.id, cursor=cursor, limit=limit))


@router.get("/accounts/{account}/keys", response_model=KeyList)
async def list_keys(account: str, _: AdminDep, accounts: AccountsDep) -> KeyList:
    return KeyList(data=[key_out(k) for k in await accounts.list_keys(account)])


@router.post(
    "/accounts/{account}/keys", response_model=CreatedKeyOut, dependencies=[Depends(no_store)]
)
async def create_key(
    account: str, body: KeyCreate, _: AdminDep, accounts: AccountsDep
) -> CreatedKeyOut:
    created = await accounts.create_key(account, name=body.name, expires_at=body.expires_at)
    return created_key_out(created)


@router.post("/keys/{key_id}/revoke", response_model=KeyOut)
async def revoke_key(key_id: str, _: AdminDep, accounts: AccountsDep) -> KeyOut:
    return key_out(await accounts.revoke_key(key_id))


@router.get("/groups", response_model=GroupList)
async def list_groups(_: AdminDep, accounts: AccountsDep) -> GroupList:
    return GroupList(data=[group_out(g) for g in await accounts.list_groups()])


@router.put("/groups/{name}", response_model=GroupOut)
async def set_group_limits(
    name: str, body: GroupIn, _: AdminDep, accounts: AccountsDep
) -> GroupOut:
    group = await accounts.set_group_limits(
        name,
        price_ratio=body.price_ratio,
        rate_limit_per_minute=body.rate_limit_per_minute,
        max_active_tasks=body.max_active_tasks,
    )
    return group_out(group)
