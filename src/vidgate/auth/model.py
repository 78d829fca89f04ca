"""Who is calling and what they own: accounts, user groups, API keys and worker tokens, as the
rest of the server sees them (``store.account_rows`` and ``store.worker_token_rows`` map rows
to these)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class GroupLimits:
    """A user group's price ratio and limits; None means the server's default."""

    name: str
    price_ratio: Decimal = Decimal("1.0")
    rate_limit_per_minute: int | None = None
    max_active_tasks: int | None = None


@dataclass(frozen=True)
class Principal:
    """Who a request is from: the account behind a valid, live API key."""

    account_id: str
    key_id: str
    user_group: str
    is_admin: bool
    group: GroupLimits = GroupLimits("default")
    key_last_used_at: float | None = None
    key_expires_at: float | None = None


@dataclass(frozen=True)
class Account:
    id: str
    name: str
    user_group: str
    is_admin: bool
    balance_cents: int
    created_at: float


@dataclass(frozen=True)
class KeyRecord:
    id: str
    account_id: str
    name: str
    prefix: str
    created_at: float
    last_used_at: float | None
    expires_at: float | None
    revoked_at: float | None


@dataclass(frozen=True)
class WorkerTokenRecord:
    """A worker token as stored: never the token itself, only its hash and visible prefix."""

    id: str
    name: str
    prefix: str
    created_at: float
    last_used_at: float | None
    revoked_at: float | None
