"""Worker tokens: ``wk-`` + 43 url-safe characters, made by admins, good only for the worker
protocol (``/worker/v1``), stored as a SHA-256 hash like API keys."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from vidgate.auth.keys import bearer_token, hash_key, new_id
from vidgate.auth.model import WorkerTokenRecord
from vidgate.errors import InvalidRequest, NotFound, Unauthorized
from vidgate.store import worker_token_rows
from vidgate.store.database import Database

TOKEN_PREFIX = "wk-"  # noqa: S105 - a marker, not a secret
VISIBLE_CHARS = 8
# last_used_at is written at most this often per token, so authentication stays a read.
TOUCH_INTERVAL = 60.0


@dataclass(frozen=True)
class CreatedWorkerToken:
    """A new token: ``secret`` is shown once, here, and never again."""

    record: WorkerTokenRecord
    secret: str


class WorkerTokenService:
    def __init__(self, db: Database, *, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.clock = clock

    async def create(self, name: str = "worker") -> CreatedWorkerToken:
        name = name.strip() or "worker"
        if len(name) > 200:
            raise InvalidRequest("A token name is at most 200 characters.", param="name")
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token_id = new_id("wkt")
        async with self.db.write() as conn:
            await worker_token_rows.insert_token(
                conn,
                token_id=token_id,
                name=name,
                prefix=secret[: len(TOKEN_PREFIX) + VISIBLE_CHARS],
                token_hash=hash_key(secret),
                now=self.clock(),
            )
            record = await worker_token_rows.get_token(conn, token_id)
        assert record is not None
        return CreatedWorkerToken(record, secret)

    async def list(self) -> list[WorkerTokenRecord]:
        async with self.db.read() as conn:
            return await worker_token_rows.list_tokens(conn)

    async def revoke(self, token_id: str) -> WorkerTokenRecord:
        """Revoke a token: its next call is refused (revoking twice is harmless)."""
        async with self.db.write() as conn:
            await worker_token_rows.revoke_token(conn, token_id, now=self.clock())
            record = await worker_token_rows.get_token(conn, token_id)
        if record is None:
            raise NotFound(f"No worker token {token_id!r}.")
        return record

    async def authenticate(self, authorization: str | None) -> WorkerTokenRecord:
        token = bearer_token(authorization)
        if token is None or not token.startswith(TOKEN_PREFIX):
            raise Unauthorized("A valid worker token is required: 'Authorization: Bearer wk-...'.")
        now = self.clock()
        async with self.db.read() as conn:
            record = await worker_token_rows.find_active(conn, hash_key(token))
        if record is None:
            raise Unauthorized("The worker token is not valid or was revoked.")
        if record.last_used_at is None or now - record.last_used_at >= TOUCH_INTERVAL:
            async with self.db.write() as conn:
                await worker_token_rows.touch_token(conn, record.id, now=now)
        return record
