"""Per-account webhook secrets: made on first need, readable by the account, rotatable."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from vidgate.store import callback_rows
from vidgate.store.database import Database
from vidgate.webhooks.signing import new_secret


@dataclass(frozen=True)
class SecretView:
    secret: str
    previous_expires_at: float | None


class WebhookSecrets:
    def __init__(
        self,
        db: Database,
        *,
        rotation_grace_seconds: float = 24 * 3600,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.grace = rotation_grace_seconds
        self.clock = clock

    async def current(self, account_id: str) -> SecretView:
        async with self.db.read() as conn:
            found = await callback_rows.get_secrets(conn, account_id)
        if found.current is None:
            async with self.db.write() as conn:
                await callback_rows.set_first_secret(conn, account_id, new_secret())
                found = await callback_rows.get_secrets(conn, account_id)
        assert found.current is not None
        expires = found.previous_expires_at if found.previous else None
        if expires is not None and expires <= self.clock():
            expires = None
        return SecretView(found.current, expires)

    async def rotate(self, account_id: str) -> SecretView:
        """A new secret; the one it replaces keeps signing too until the grace period ends."""
        await self.current(account_id)  # an account's first secret is made on first use
        fresh = new_secret()
        until = self.clock() + self.grace
        async with self.db.write() as conn:
            await callback_rows.rotate_secret(conn, account_id, fresh, previous_expires_at=until)
        return SecretView(fresh, until)

    async def signing_secrets(self, account_id: str) -> list[str]:
        view = await self.current(account_id)
        if view.previous_expires_at is None:
            return [view.secret]
        async with self.db.read() as conn:
            found = await callback_rows.get_secrets(conn, account_id)
        return [view.secret, *([found.previous] if found.previous else [])]
