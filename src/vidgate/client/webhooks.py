"""Verifying a callback: Standard Webhooks signatures, with the standard library only.

The signed content is ``{webhook-id}.{webhook-timestamp}.{body}``, HMAC-SHA256 with the
account's secret (``whsec_`` + base64 of the key); ``webhook-signature`` holds one or more
space-separated ``v1,<base64>`` entries (two during a secret rotation), any of which may match.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping
from typing import Final

from pydantic import ValidationError

from vidgate.client.errors import WebhookVerificationError
from vidgate.client.types import Task

SECRET_PREFIX: Final = "whsec_"  # noqa: S105 - the prefix, not a secret
DEFAULT_TOLERANCE: Final = 300


def _key(secret: str | bytes) -> bytes:
    if isinstance(secret, bytes):
        return secret
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise WebhookVerificationError(
            "The webhook secret is not 'whsec_' followed by base64.", code="invalid_secret"
        ) from exc


def sign(secret: str | bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``v1,<base64>`` signature of a payload (what a sender puts in the header)."""
    content = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify_webhook(
    body: bytes | str,
    headers: Mapping[str, str],
    secret: str | bytes,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> Task:
    """The task a callback carries, once its signature and timestamp hold.

    ``body`` must be the raw request body (the bytes as received, not re-serialised JSON);
    ``headers`` any mapping (names are matched case-insensitively). Raises
    WebhookVerificationError on a missing header, a timestamp more than ``tolerance`` seconds
    from now, or no matching signature.
    """
    payload = body.encode() if isinstance(body, str) else body
    lowered = {name.lower(): value for name, value in headers.items()}
    message_id = lowered.get("webhook-id")
    stamp = lowered.get("webhook-timestamp")
    signatures = lowered.get("webhook-signature")
    if not message_id or not stamp or not signatures:
        raise WebhookVerificationError(
            "Missing webhook-id, webhook-timestamp or webhook-signature header.",
            code="missing_header",
        )
    try:
        timestamp = int(stamp)
    except ValueError as exc:
        raise WebhookVerificationError(
            "The webhook-timestamp is not a number.", code="invalid_timestamp"
        ) from exc
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise WebhookVerificationError(
            "The webhook-timestamp is too far from now (a replay, or a wrong clock).",
            code="invalid_timestamp",
        )
    expected = sign(secret, message_id, timestamp, payload).encode()
    # Every candidate is compared in constant time, and all of them are, whatever matches.
    matched = False
    for candidate in signatures.split():
        matched |= hmac.compare_digest(candidate.encode(), expected)
    if not matched:
        raise WebhookVerificationError(
            "No webhook-signature matches this body and secret.", code="invalid_signature"
        )
    try:
        return Task.model_validate_json(payload)
    except ValidationError as exc:
        raise WebhookVerificationError(
            "The signed body is not a task object.", code="invalid_payload"
        ) from exc
