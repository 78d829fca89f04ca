"""Delivers due callbacks: leased from the outbox, signed, sent, retried 1, 2 and 4 s apart.

Deliveries run concurrently up to a bound, each in its own task, so a slow or dead receiver
holds up only its own callback. A delivery's outcome is written only while its lease holds, and
the lease outlives the longest attempt, so a crash at any moment leaves the callback due again:
at least once, with receivers deduplicating on ``webhook-id``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable

import httpx

from vidgate.errors import VidgateError
from vidgate.media.egress import EgressPolicy
from vidgate.store import callback_rows
from vidgate.store.database import Database
from vidgate.webhooks.model import Attempt, Callback
from vidgate.webhooks.secret_store import WebhookSecrets
from vidgate.webhooks.signing import signature_headers

log = logging.getLogger(__name__)

ATTEMPT_TIMEOUT = 10.0
RETRY_DELAYS = (1.0, 2.0, 4.0)  # after the 1st, 2nd and 3rd failed attempts: 4 attempts in all
LEASE_SECONDS = ATTEMPT_TIMEOUT + 20.0


class CallbackDispatcher:
    def __init__(
        self,
        db: Database,
        egress: EgressPolicy,
        secrets_store: WebhookSecrets,
        *,
        concurrency: int = 16,
        poll_interval: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.egress = egress
        self.secrets = secrets_store
        self.concurrency = concurrency
        self.poll_interval = poll_interval
        self.clock = clock
        self.token = "disp_" + secrets.token_hex(8)
        self._wake = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()
        # On PostgreSQL a callback enqueued by any replica wakes every dispatcher.
        db.subscribe("callbacks", lambda _: self.notify())

    def notify(self) -> None:
        """A callback may have become due (a task finished in this process)."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                # Cleared before looking, so a notify during this round is not lost.
                self._wake.clear()
                try:
                    await self._dispatch_due()
                    wait = await self._until_next_due()
                except Exception:
                    log.exception("callback dispatcher: a round failed; retrying")
                    wait = self.poll_interval
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)
        finally:
            for task in list(self._in_flight):
                task.cancel()
            await asyncio.gather(*self._in_flight, return_exceptions=True)

    async def _dispatch_due(self) -> None:
        free = self.concurrency - len(self._in_flight)
        if free <= 0:
            return
        async with self.db.write() as conn:
            due = await callback_rows.claim_due(
                conn, token=self.token, now=self.clock(), lease_seconds=LEASE_SECONDS, limit=free
            )
        for callback in due:
            task = asyncio.create_task(self.deliver(callback), name=f"callback-{callback.id}")
            self._in_flight.add(task)
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._wake.set()  # a slot is free, and a retry may now be scheduled

    async def _until_next_due(self) -> float:
        async with self.db.read() as conn:
            due = await callback_rows.next_due_at(conn)
        if due is None:
            return self.poll_interval
        return max(0.0, min(self.poll_interval, due - self.clock()))

    async def deliver(self, callback: Callback) -> None:
        """One attempt: sign, POST, and record what happened."""
        started = self.clock()
        status_code: int | None = None
        error: str | None = None
        try:
            signing = await self.secrets.signing_secrets(callback.account_id)
            # egress.post_json sets the one Content-Type (application/json): adding ours
            # too sent the header twice, under two spellings.
            headers = signature_headers(callback.id, started, callback.payload, signing)
            response = await self.egress.post_json(
                callback.url, callback.payload.encode(), headers, ATTEMPT_TIMEOUT
            )
            status_code = response.status_code
            if not 200 <= status_code < 300:
                error = f"answered HTTP {status_code}"
                if 300 <= status_code < 400:
                    error += " (redirects are not followed)"
        except VidgateError as failure:
            error = failure.message
        except (httpx.HTTPError, OSError) as failure:
            error = f"{type(failure).__name__}: {failure}"
        except Exception as failure:
            log.exception("task %s: callback %s crashed", callback.task_id, callback.id)
            error = f"internal error: {type(failure).__name__}"
        ended = self.clock()
        await self._record(callback, started, ended, status_code, error)

    async def _record(
        self,
        callback: Callback,
        started: float,
        ended: float,
        status_code: int | None,
        error: str | None,
    ) -> None:
        number = callback.attempts + 1
        succeeded = error is None
        if succeeded:
            status, next_at = "delivered", ended
        elif number > len(RETRY_DELAYS):
            status, next_at = "failed", ended
        else:
            status, next_at = "pending", ended + RETRY_DELAYS[number - 1]
        attempt = Attempt(
            number=number,
            started_at=started,
            duration_ms=round((ended - started) * 1000),
            status_code=status_code,
            error=error,
            succeeded=succeeded,
        )
        async with self.db.write() as conn:
            kept = await callback_rows.record_attempt(
                conn, callback, attempt=attempt, status=status, next_attempt_at=next_at, now=ended
            )
        if not kept:
            log.warning(
                "task %s: callback %s lease lost; outcome dropped", callback.task_id, callback.id
            )
        elif succeeded:
            log.info("task %s: callback delivered (attempt %d)", callback.task_id, number)
        else:
            log.warning(
                "task %s: callback attempt %d failed: %s%s",
                callback.task_id,
                number,
                error,
                "; giving up" if status == "failed" else "",
            )
