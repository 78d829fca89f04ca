"""Accounts, user groups and keys: authentication, management, the first-start bootstrap."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation

from sqlalchemy.ext.asyncio import AsyncConnection

from vidgate.auth.keys import bearer_token, hash_key, make_key, new_id
from vidgate.auth.model import Account, GroupLimits, KeyRecord, Principal
from vidgate.billing.ledger import checked_cents
from vidgate.billing.model import credits_to_cents
from vidgate.errors import Conflict, Forbidden, InvalidRequest, NotFound, Unauthorized
from vidgate.store import account_rows, ledger_rows
from vidgate.store.database import Database

log = logging.getLogger(__name__)

BOOTSTRAP_MARK = "bootstrapped"
ADMIN_ACCOUNT = "admin"
# last_used_at is written at most this often per key, so authentication stays a read.
TOUCH_INTERVAL = 60.0
MAX_KNOWN_KEYS = 10_000


@dataclass(frozen=True)
class CreatedKey:
    """A new key: ``secret`` is shown once, here, and never again."""

    record: KeyRecord
    secret: str


@dataclass(frozen=True)
class CreatedAccount:
    account_id: str
    name: str
    key: str


class AccountService:
    def __init__(
        self,
        db: Database,
        *,
        clock: Callable[[], float] = time.time,
        cache_seconds: float = 0.0,
    ) -> None:
        self.db = db
        self.clock = clock
        # Who a key is, remembered this long: a poll then costs no database read for its key.
        # A change made here (revoke, group) clears it at once; one made through another
        # replica is seen there within cache_seconds.
        self.cache_seconds = cache_seconds
        self._known: dict[str, tuple[float, Principal]] = {}

    # --- authentication --------------------------------------------------------------------

    async def authenticate(self, authorization: str | None) -> Principal:
        token = bearer_token(authorization)
        if token is None:
            raise Unauthorized()
        now = self.clock()
        key_hash = hash_key(token)
        known = self._known.get(key_hash)
        if known is not None and now < known[0]:
            until, principal = known
        else:
            async with self.db.read_quick() as conn:
                found = await account_rows.principal_for_key(conn, key_hash, now=now)
            if found is None:
                self._known.pop(key_hash, None)
                raise Unauthorized("The API key is not valid, has expired or was revoked.")
            principal = found
            # Remembered from this read on, never longer: a hit does not extend it.
            until = now + self.cache_seconds
            if principal.key_expires_at is not None:
                until = min(until, principal.key_expires_at)
        last = principal.key_last_used_at
        if last is None or now - last >= TOUCH_INTERVAL:
            async with self.db.write_quick() as conn:
                await account_rows.touch_key(conn, principal.key_id, now=now)
            principal = replace(principal, key_last_used_at=now)
        if self.cache_seconds > 0:
            if len(self._known) >= MAX_KNOWN_KEYS:
                self._known.clear()
            self._known[key_hash] = (until, principal)
        return principal

    def forget_keys(self) -> None:
        """Drop every remembered key: after a revocation or a change of group."""
        self._known.clear()

    # --- accounts and groups ---------------------------------------------------------------

    async def create_account(
        self,
        name: str,
        *,
        credits: Decimal = Decimal(0),
        group: str = "default",
        is_admin: bool = False,
        key: str | None = None,
    ) -> CreatedAccount:
        """A new account with one key (made here, or the given one) and its opening credits."""
        name = name.strip()
        if not name or len(name) > 200:
            raise InvalidRequest("An account name is 1 to 200 characters.", param="name")
        opening = checked_cents(credits, "credits") if credits else 0
        new_key = make_key(key)
        account_id = new_id("acct")
        now = self.clock()
        async with self.db.write() as conn:
            if await account_rows.find_account(conn, name) is not None:
                raise Conflict(f"An account named {name!r} already exists.")
            await self._require_group(conn, group)
            await account_rows.insert_account(
                conn,
                account_id=account_id,
                name=name,
                now=now,
                is_admin=is_admin,
                user_group=group,
            )
            await self._insert_key(conn, account_id, "default", new_key.secret, None, now)
            if opening:
                await ledger_rows.top_up(conn, account_id, opening, now=now, reason="opening")
        return CreatedAccount(account_id, name, new_key.secret)

    async def get_account(self, ref: str) -> Account:
        async with self.db.read() as conn:
            account = await account_rows.find_account(conn, ref)
        if account is None:
            raise NotFound(f"No account {ref!r}.")
        return account

    async def list_accounts(self) -> list[Account]:
        async with self.db.read() as conn:
            return await account_rows.list_accounts(conn)

    async def set_group(self, ref: str, group: str) -> Account:
        async with self.db.write() as conn:
            account = await account_rows.find_account(conn, ref)
            if account is None:
                raise NotFound(f"No account {ref!r}.")
            await self._require_group(conn, group)
            await account_rows.set_account_group(conn, account.id, group)
        self.forget_keys()
        return await self.get_account(account.id)

    async def set_group_limits(
        self,
        name: str,
        *,
        price_ratio: str | Decimal,
        rate_limit_per_minute: int | None = None,
        max_active_tasks: int | None = None,
    ) -> GroupLimits:
        name = name.strip()
        if not name or len(name) > 64:
            raise InvalidRequest("A group name is 1 to 64 characters.", param="name")
        try:
            ratio = Decimal(str(price_ratio))
        except InvalidOperation:
            raise InvalidRequest(
                f"price_ratio {price_ratio!r} is not a number.", param="price_ratio"
            ) from None
        if not ratio.is_finite() or ratio < 0 or ratio > 1000:
            raise InvalidRequest("price_ratio is a number from 0 to 1000.", param="price_ratio")
        for param, value in (
            ("rate_limit_per_minute", rate_limit_per_minute),
            ("max_active_tasks", max_active_tasks),
        ):
            if value is not None and value < 0:
                raise InvalidRequest(f"{param} cannot be negative.", param=param)
        group = GroupLimits(name, ratio, rate_limit_per_minute, max_active_tasks)
        async with self.db.write() as conn:
            await account_rows.upsert_group(conn, group, now=self.clock())
        self.forget_keys()
        return group

    async def list_groups(self) -> list[GroupLimits]:
        async with self.db.read() as conn:
            return await account_rows.list_groups(conn)

    @staticmethod
    async def _require_group(conn: AsyncConnection, group: str) -> None:
        if await account_rows.get_group(conn, group) is None:
            raise InvalidRequest(
                f"There is no user group {group!r}; create it first.", param="user_group"
            )

    # --- keys ------------------------------------------------------------------------------

    async def create_key(
        self, account_ref: str, *, name: str = "default", expires_at: float | None = None
    ) -> CreatedKey:
        name = name.strip() or "default"
        if len(name) > 200:
            raise InvalidRequest("A key name is at most 200 characters.", param="name")
        now = self.clock()
        if expires_at is not None and expires_at <= now:
            raise InvalidRequest("expires_at must be in the future.", param="expires_at")
        new_key = make_key()
        async with self.db.write() as conn:
            account = await account_rows.find_account(conn, account_ref)
            if account is None:
                raise NotFound(f"No account {account_ref!r}.")
            key_id = await self._insert_key(conn, account.id, name, new_key.secret, expires_at, now)
            record = await account_rows.get_key(conn, key_id)
        assert record is not None
        return CreatedKey(record, new_key.secret)

    async def list_keys(self, account_ref: str) -> list[KeyRecord]:
        async with self.db.read() as conn:
            account = await account_rows.find_account(conn, account_ref)
            if account is None:
                raise NotFound(f"No account {account_ref!r}.")
            return await account_rows.list_keys(conn, account.id)

    async def revoke_key(self, key_id: str, *, account_id: str | None = None) -> KeyRecord:
        """Revoke a key; with ``account_id``, only one of that account's own keys."""
        async with self.db.write() as conn:
            record = await account_rows.get_key(conn, key_id)
            if record is None or (account_id is not None and record.account_id != account_id):
                raise NotFound(f"No key {key_id!r}.")
            await account_rows.revoke_key(conn, key_id, now=self.clock())
            revoked = await account_rows.get_key(conn, key_id)
        self.forget_keys()
        assert revoked is not None
        return revoked

    @staticmethod
    async def _insert_key(
        conn: AsyncConnection,
        account_id: str,
        name: str,
        secret: str,
        expires_at: float | None,
        now: float,
    ) -> str:
        material = make_key(secret)
        key_id = new_id("key")
        await account_rows.insert_api_key(
            conn,
            key_id=key_id,
            account_id=account_id,
            name=name,
            prefix=material.prefix,
            key_hash=material.hash,
            now=now,
            expires_at=expires_at,
        )
        return key_id

    # --- server bootstrap ------------------------------------------------------------------

    async def bootstrap(self, *, key: str | None, credits: Decimal) -> CreatedAccount | None:
        """Create the admin account on the database's first start; None on every later start.

        The mark and the account are written in one transaction, so two replicas starting at
        once on one database still make one admin account.
        """
        new_key = make_key(key)
        account_id = new_id("acct")
        now = self.clock()
        async with self.db.write() as conn:
            if not await account_rows.claim_state(conn, BOOTSTRAP_MARK, account_id):
                return None
            await account_rows.insert_account(
                conn, account_id=account_id, name=ADMIN_ACCOUNT, now=now, is_admin=True
            )
            await self._insert_key(conn, account_id, "bootstrap", new_key.secret, None, now)
            cents = credits_to_cents(credits)
            if cents > 0:
                await ledger_rows.top_up(conn, account_id, cents, now=now, reason="bootstrap")
        log.info("bootstrap: admin account %s made", account_id)
        return CreatedAccount(account_id, ADMIN_ACCOUNT, new_key.secret)

    async def signing_secret(self) -> bytes:
        """The server-wide secret for signed URLs: made once, shared by every replica."""
        async with self.db.write() as conn:
            await account_rows.claim_state(conn, "url_signing_secret", secrets.token_hex(32))
            value = await account_rows.get_state(conn, "url_signing_secret")
        assert value is not None
        return bytes.fromhex(value)


def require_admin(principal: Principal) -> None:
    if not principal.is_admin:
        raise Forbidden("This needs an admin key.")
