"""API key material: ``sk-`` + 43 url-safe random characters, stored only as a SHA-256 hash.

A fast hash is right here: the keys carry 256 bits from a CSPRNG, so there is nothing for a
slow password hash to protect, and every request checks one.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

KEY_PREFIX = "sk-"
VISIBLE_CHARS = 8


@dataclass(frozen=True)
class NewKey:
    """A freshly made key: ``secret`` is shown once and never stored."""

    secret: str
    prefix: str
    hash: str


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def visible_prefix(secret: str) -> str:
    return secret[: len(KEY_PREFIX) + VISIBLE_CHARS]


def make_key(secret: str | None = None) -> NewKey:
    """A new key, or the given one (an operator's bootstrap key) prepared for storing."""
    if secret is None:
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
    return NewKey(secret=secret, prefix=visible_prefix(secret), hash=hash_key(secret))


def new_id(kind: str) -> str:
    """An opaque id for an account (``acct``) or a key record (``key``)."""
    return f"{kind}_{secrets.token_hex(8)}"


def bearer_token(authorization: str | None) -> str | None:
    """The key from an ``Authorization: Bearer <key>`` header, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token
