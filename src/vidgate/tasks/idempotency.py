"""Idempotent create (the IETF httpapi Idempotency-Key draft, as Stripe does it).

The same key with the same body returns the first answer and creates nothing; with another body
it is 422; while the first request is still running it is 409. The answer is stored in the
transaction that creates the task, so a server killed between creating and answering still
gives a retry the original answer. Keys are kept 24 hours.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from vidgate.errors import IdempotencyConflict, IdempotencyMismatch, InvalidRequest
from vidgate.store import idempotency_rows
from vidgate.store.database import Database

KEY_TTL_SECONDS = 24 * 3600
# How long a first request may hold its key before a retry may take over (it crashed). Longer
# than any create takes: image fetches are bounded at 15 s each.
LOCK_SECONDS = 120.0
MAX_KEY_CHARS = 255


@dataclass(frozen=True)
class Claim:
    """A key this request holds; the task service completes it with the answer."""

    account_id: str
    key: str


@dataclass(frozen=True)
class Replay:
    status: int
    body: bytes


def fingerprint(body: dict[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


class IdempotencyService:
    def __init__(self, db: Database, *, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.clock = clock

    async def begin(self, account_id: str, key: str, body: dict[str, Any]) -> Claim | Replay:
        """Either this request now holds the key, or here is the first request's answer."""
        if not key or len(key) > MAX_KEY_CHARS or not key.isprintable():
            raise InvalidRequest(
                f"Idempotency-Key is 1 to {MAX_KEY_CHARS} printable characters.",
                param="Idempotency-Key",
            )
        digest = fingerprint(body)
        now = self.clock()
        async with self.db.write_quick() as conn:
            if await idempotency_rows.claim(
                conn,
                account_id,
                key,
                digest,
                now=now,
                lock_seconds=LOCK_SECONDS,
                ttl_seconds=KEY_TTL_SECONDS,
            ):
                return Claim(account_id, key)
            found = await idempotency_rows.find(conn, account_id, key, now=now)
        if found is None:  # it expired between the two statements; very unlikely
            raise IdempotencyConflict(headers={"Retry-After": "1"})
        if found.fingerprint != digest:
            raise IdempotencyMismatch()
        if found.status != "done" or found.response_body is None:
            raise IdempotencyConflict(headers={"Retry-After": "1"})
        return Replay(found.response_status or 200, found.response_body.encode())

    async def once(
        self,
        account_id: str,
        key: str,
        body: dict[str, Any],
        create: Callable[[Claim], Awaitable[bytes]],
    ) -> Replay | bytes:
        """The whole protocol around one create: the first answer replayed, or ``create``'s
        answer, made while this request holds the key (``create`` stores it with the task, in
        its transaction); a create that fails lets go of the key, so a retry may run."""
        outcome = await self.begin(account_id, key, body)
        if isinstance(outcome, Replay):
            return outcome
        try:
            return await create(outcome)
        except BaseException:
            await self.abandon(outcome)
            raise

    async def abandon(self, claim: Claim) -> None:
        async with self.db.write_quick() as conn:
            await idempotency_rows.release(conn, claim.account_id, claim.key)

    async def forget_expired(self) -> int:
        async with self.db.write() as conn:
            return await idempotency_rows.delete_expired(conn, now=self.clock())
