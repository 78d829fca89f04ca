"""Accounts and keys: authenticating requests, creating accounts, the first-start bootstrap."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from vidgate.auth.keys import bearer_token, hash_key, make_key, new_id
from vidgate.errors import Conflict, Unauthorized
from vidgate.store import account_rows
from vidgate.store.account_rows import Principal
from vidgate.store.database import Database
from vidgate.tasks.model import credits_to_cents

log = logging.getLogger(__name__)

BOOTSTRAP_MARK = "bootstrapped"
ADMIN_ACCOUNT = "admin"


@dataclass(frozen=True)
class CreatedAccount:
    account_id: str
    name: str
    key: str


class AccountService:
    def __init__(self, db: Database, *, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.clock = clock

    async def authenticate(self, authorization: str | None) -> Principal:
        token = bearer_token(authorization)
        if token is None:
            raise Unauthorized()
        async with self.db.read() as conn:
            principal = await account_rows.principal_for_key(
                conn, hash_key(token), now=self.clock()
            )
        if principal is None:
            raise Unauthorized("The API key is not valid, has expired or was revoked.")
        return principal

    async def create_account(
        self,
        name: str,
        *,
        credits: Decimal = Decimal(0),
        is_admin: bool = False,
        key: str | None = None,
    ) -> CreatedAccount:
        """A new account with one key (made here, or the given one) and its opening credits."""
        new_key = make_key(key)
        account_id = new_id("acct")
        now = self.clock()
        async with self.db.write() as conn:
            if await account_rows.account_exists(conn, name):
                raise Conflict(f"An account named {name!r} already exists.")
            await account_rows.insert_account(
                conn, account_id=account_id, name=name, now=now, is_admin=is_admin
            )
            await account_rows.insert_api_key(
                conn,
                key_id=new_id("key"),
                account_id=account_id,
                name="default",
                prefix=new_key.prefix,
                key_hash=new_key.hash,
                now=now,
            )
            cents = credits_to_cents(credits)
            if cents > 0:
                await account_rows.top_up(conn, account_id, cents, now=now, reason="opening")
        return CreatedAccount(account_id, name, new_key.secret)

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
            await account_rows.insert_api_key(
                conn,
                key_id=new_id("key"),
                account_id=account_id,
                name="bootstrap",
                prefix=new_key.prefix,
                key_hash=new_key.hash,
                now=now,
            )
            cents = credits_to_cents(credits)
            if cents > 0:
                await account_rows.top_up(conn, account_id, cents, now=now, reason="bootstrap")
        log.info("bootstrap: admin account %s made", account_id)
        return CreatedAccount(account_id, ADMIN_ACCOUNT, new_key.secret)

    async def signing_secret(self) -> bytes:
        """The server-wide secret for signed URLs: made once, shared by every replica."""
        async with self.db.write() as conn:
            await account_rows.claim_state(conn, "url_signing_secret", secrets.token_hex(32))
            value = await account_rows.get_state(conn, "url_signing_secret")
        assert value is not None
        return bytes.fromhex(value)
