"""``/v1/keys``: an account lists, creates and revokes its own API keys."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from vidgate.api.deps import AccountsDep, PrincipalDep
from vidgate.api.security_headers import no_store
from vidgate.auth.accounts import CreatedKey
from vidgate.auth.model import KeyRecord

router = APIRouter(tags=["keys"])

# 9999-12-31T23:59:59Z: any later Unix time is no real expiry, and past 1e308 it is not a float.
LATEST_EXPIRY = 253_402_300_799


class KeyOut(BaseModel):
    id: str
    object: str = "api_key"
    account_id: str
    name: str
    prefix: str
    created: int
    last_used: int | None
    expires: int | None
    revoked: int | None


class CreatedKeyOut(KeyOut):
    key: str = Field(description="The full key: shown this once, never again.")


class KeyList(BaseModel):
    object: str = "list"
    data: list[KeyOut]


class KeyCreate(BaseModel):
    name: str = Field(default="default", max_length=200)
    expires_at: int | None = Field(
        default=None, le=LATEST_EXPIRY, description="Unix time after which it fails"
    )


def _when(value: float | None) -> int | None:
    return None if value is None else int(value)


def key_out(record: KeyRecord) -> KeyOut:
    return KeyOut(
        id=record.id,
        account_id=record.account_id,
        name=record.name,
        prefix=record.prefix,
        created=int(record.created_at),
        last_used=_when(record.last_used_at),
        expires=_when(record.expires_at),
        revoked=_when(record.revoked_at),
    )


def created_key_out(created: CreatedKey) -> CreatedKeyOut:
    return CreatedKeyOut(**key_out(created.record).model_dump(), key=created.secret)


@router.get("/v1/keys", response_model=KeyList)
async def list_own_keys(principal: PrincipalDep, accounts: AccountsDep) -> KeyList:
    keys = await accounts.list_keys(principal.account_id)
    return KeyList(data=[key_out(record) for record in keys])


@router.post("/v1/keys", response_model=CreatedKeyOut, dependencies=[Depends(no_store)])
async def create_own_key(
    body: KeyCreate, principal: PrincipalDep, accounts: AccountsDep
) -> CreatedKeyOut:
    created = await accounts.create_key(
        principal.account_id, name=body.name, expires_at=body.expires_at
    )
    return created_key_out(created)


@router.post("/v1/keys/{key_id}/revoke", response_model=KeyOut)
async def revoke_own_key(key_id: str, principal: PrincipalDep, accounts: AccountsDep) -> KeyOut:
    """Revoke one of this account's keys; it is refused from the next request on."""
    return key_out(await accounts.revoke_key(key_id, account_id=principal.account_id))
