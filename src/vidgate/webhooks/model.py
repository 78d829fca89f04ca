"""A task's callback as the outbox holds it, its delivery attempts, and an account's signing
secrets (``store.callback_rows`` maps rows to these)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Callback:
    id: str
    task_id: str
    account_id: str
    url: str
    payload: str
    status: str
    attempts: int
    next_attempt_at: float
    lease_token: str | None = None


@dataclass(frozen=True)
class Attempt:
    number: int
    started_at: float
    duration_ms: int
    status_code: int | None
    error: str | None
    succeeded: bool


@dataclass(frozen=True)
class Secrets:
    current: str | None
    previous: str | None
    previous_expires_at: float | None
