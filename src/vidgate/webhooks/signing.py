"""Standard Webhooks signatures: per-account ``whsec_`` secrets and the three headers."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime

from standardwebhooks import Webhook

SECRET_PREFIX = "whsec_"  # noqa: S105 - the prefix, not a secret


def new_secret() -> str:
    """24 random bytes, base64, with the ``whsec_`` prefix every Standard Webhooks library reads."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def new_message_id() -> str:
    return "msg_" + secrets.token_urlsafe(18)


def signature_headers(
    message_id: str, timestamp: float, payload: str, signing_secrets: Sequence[str]
) -> dict[str, str]:
    """``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` (one ``v1,`` entry per
    secret: during a rotation a receiver holding either the old or the new secret verifies)."""
    moment = datetime.fromtimestamp(int(timestamp), UTC)
    signatures = [Webhook(secret).sign(message_id, moment, payload) for secret in signing_secrets]
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(timestamp)),
        "webhook-signature": " ".join(signatures),
    }
