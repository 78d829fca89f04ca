"""Signed, expiring download URLs: HMAC-SHA256 over the file key and the expiry time."""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import quote, urlencode

from vidgate.errors import Forbidden


class UrlSigner:
    def __init__(self, secret: bytes, base_url: str) -> None:
        self._secret = secret
        self.base_url = base_url.rstrip("/")

    def _signature(self, key: str, expires: int) -> str:
        message = f"{key}\n{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def sign(self, key: str, *, expires: int) -> str:
        """The full URL of ``key`` under ``/files/``, valid until the unix time ``expires``."""
        query = urlencode({"expires": expires, "signature": self._signature(key, expires)})
        return f"{self.base_url}/files/{quote(key)}?{query}"

    def verify(self, key: str, expires: str | None, signature: str | None, *, now: float) -> None:
        """Raise ``Forbidden`` unless the signature is ours and still in date."""
        if not expires or not signature or not expires.isdigit():
            raise Forbidden("This link is not signed; ask the API for a fresh result URL.")
        if not hmac.compare_digest(self._signature(key, int(expires)), signature):
            raise Forbidden("This link's signature is not valid.")
        if int(expires) <= now:
            raise Forbidden("This link has expired; ask the API for a fresh result URL.")
