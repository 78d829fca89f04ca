"""Signed, expiring download URLs: HMAC-SHA256 over the file key and the expiry time."""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import quote, urlencode

from vidgate.errors import Forbidden

# Unix times have 10 digits until the year 2286; this leaves room and keeps int() cheap.
MAX_EXPIRES_DIGITS = 15


class UrlSigner:
    def __init__(self, secret: bytes, base_url: str) -> None:
        self._secret = secret
        self.base_url = base_url.rstrip("/")

    def _signature(self, key: str, expires: int) -> str:
        # surrogatepass: a key decoded from a hostile URL must fail the comparison, not encoding.
        message = f"{key}\n{expires}".encode("utf-8", "surrogatepass")
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def sign(self, key: str, *, expires: int) -> str:
        """The full URL of ``key`` under ``/files/``, valid until the unix time ``expires``."""
        query = urlencode({"expires": expires, "signature": self._signature(key, expires)})
        return f"{self.base_url}/files/{quote(key)}?{query}"

    def verify(self, key: str, expires: str | None, signature: str | None, *, now: float) -> None:
        """Raise ``Forbidden`` unless the signature is ours and still in date."""
        if not expires or not signature:
            raise Forbidden("This link is not signed; ask the API for a fresh result URL.")
        # isdigit() alone also takes "²" and other Unicode digits, which int() refuses, and
        # int() refuses more than 4300 digits: a unix time is a few ASCII digits.
        if not (expires.isascii() and expires.isdigit()) or len(expires) > MAX_EXPIRES_DIGITS:
            raise Forbidden("This link's expiry is not a unix time; ask the API for a fresh URL.")
        # compare_digest refuses non-ASCII strings with a TypeError: compare bytes.
        given = signature.encode("utf-8", "surrogatepass")
        if not hmac.compare_digest(self._signature(key, int(expires)).encode(), given):
            raise Forbidden("This link's signature is not valid.")
        if int(expires) <= now:
            raise Forbidden("This link has expired; ask the API for a fresh result URL.")
