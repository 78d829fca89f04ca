"""The task as the domain sees it (its status changes are ``tasks.lifecycle``'s)."""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any

from vidgate.billing.model import cents_to_credits

TASK_ID_PREFIX = "task-unified-"
_ID_ALPHABET = string.ascii_lowercase + string.digits


class TaskStatus(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"

    @property
    def is_terminal(self) -> bool:
        return self in (TaskStatus.COMPLETED, TaskStatus.FAILED)


def new_task_id(created: int) -> str:
    """``task-unified-<unix seconds>-<8 chars of [a-z0-9]>``, the random part from a CSPRNG."""
    suffix = "".join(secrets.choice(_ID_ALPHABET) for _ in range(8))
    return f"{TASK_ID_PREFIX}{created}-{suffix}"


def is_task_id_shaped(task_id: str) -> bool:
    return task_id.startswith(TASK_ID_PREFIX)


@dataclass(frozen=True)
class TaskError:
    code: str
    message: str


@dataclass(frozen=True)
class Task:
    id: str
    account_id: str
    model: str
    engine: str
    status: TaskStatus
    progress: int
    prompt: str
    aspect_ratio: str
    image_keys: list[str]
    callback_url: str | None
    user_group: str
    credits_cents: int
    estimated_time: int
    created_at: float
    updated_at: float
    attempt: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    cancel_requested: bool = False
    result_key: str | None = None
    error: TaskError | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    api_key_id: str | None = None
    retries: int = 0
    deadline_at: float | None = None
    run_deadline_at: float | None = None

    @property
    def created(self) -> int:
        return int(self.created_at)

    @property
    def can_cancel(self) -> bool:
        return not self.status.is_terminal and not self.cancel_requested

    @property
    def credits_reserved(self) -> Decimal:
        return cents_to_credits(self.credits_cents)


@dataclass(frozen=True)
class Heartbeat:
    """What a worker learns when it reports: whether it still holds the task, and if cancelled."""

    held: bool
    cancel_requested: bool = False


@dataclass(frozen=True)
class IdempotencyRecord:
    """An Idempotency-Key as stored: the request's fingerprint and, once made, the answer."""

    fingerprint: str
    status: str
    response_status: int | None
    response_body: str | None
    locked_until: float | None
