"""Images a client uploads (``POST /v1/files``), usable in ``image_urls`` for a day.

An upload is stored under ``uploads/<hour>/<id><ext>``, where ``<hour>`` is the unix hour its
link expires. The key carries its own expiry, so the purge needs no table: it deletes whole
past hours. A task that uses an upload reads it straight from the store (the server never
fetches its own URLs over the network) and copies it into the task's inputs, so the task does
not depend on the upload surviving.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

from vidgate.errors import FetchFailed, RequestTooLarge, VidgateError
from vidgate.media.files import FileStore
from vidgate.media.images import DEFAULT_MAX_BYTES, ImageInfo, validate_image
from vidgate.media.signing import UrlSigner

log = logging.getLogger(__name__)

UPLOAD_TTL_SECONDS = 24 * 3600
_ID_ALPHABET = string.ascii_lowercase + string.digits
_PREFIX = "uploads/"


@dataclass(frozen=True, slots=True)
class Upload:
    id: str
    key: str
    url: str
    filename: str | None
    size: int
    info: ImageInfo
    created: int
    expires_at: int


class Uploads:
    def __init__(
        self,
        files: FileStore,
        signer: UrlSigner,
        *,
        clock: Callable[[], float],
        ttl_seconds: int = UPLOAD_TTL_SECONDS,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self.files = files
        self.signer = signer
        self.clock = clock
        self.ttl_seconds = ttl_seconds
        self.max_bytes = max_bytes
        # Hours up to this one are purged already; the first sweep looks back a week.
        self._purged_through: int | None = None

    async def store(self, data: bytes, filename: str | None) -> Upload:
        """Validate ``data`` as an image like a fetched one, store it, and sign its URL."""
        if len(data) > self.max_bytes:
            raise RequestTooLarge(
                f"The file is {len(data)} bytes; uploads are at most {self.max_bytes} bytes.",
                param="file",
            )
        if not data:
            raise FetchFailed("The file is empty.", param="file")
        try:
            info = await asyncio.to_thread(validate_image, data)
        except VidgateError as error:
            raise error.with_param("file", f"file: the upload {error.message}") from None
        now = int(self.clock())
        # At least the TTL, rounded up to the hour that names the key.
        hour = -(-(now + self.ttl_seconds) // 3600)
        upload_id = "file-" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(24))
        key = f"{_PREFIX}{hour}/{upload_id}{info.extension}"
        await asyncio.to_thread(self.files.put_bytes, key, data)
        expires = hour * 3600
        return Upload(
            id=upload_id,
            key=key,
            url=self.signer.sign(key, expires=expires),
            filename=filename,
            size=len(data),
            info=info,
            created=now,
            expires_at=expires,
        )

    def key_of(self, url: str) -> str | None:
        """The store key when ``url`` is one of this server's upload links, else None.

        A link of ours with a bad signature, or past its expiry, is refused here rather than
        fetched: it could never work over the network either.
        """
        prefix = f"{self.signer.base_url}/files/{_PREFIX}"
        if not url.startswith(prefix):
            return None
        parts = urlsplit(url)
        key = unquote(parts.path).removeprefix(urlsplit(self.signer.base_url).path + "/files/")
        query = parse_qs(parts.query)
        expires = query.get("expires", [None])[0]
        signature = query.get("signature", [None])[0]
        try:
            self.signer.verify(key, expires, signature, now=self.clock())
        except VidgateError as error:
            raise FetchFailed(f"is an upload link that cannot be used: {error.message}") from None
        return key

    async def read(self, url: str) -> bytes | None:
        """The bytes of one of our uploads, or None when ``url`` is not an upload link."""
        key = self.key_of(url)
        if key is None:
            return None
        data = await asyncio.to_thread(self.files.read_bytes, key)
        if data is None:
            raise FetchFailed("is an upload that is no longer stored; upload the image again.")
        return data

    async def purge_expired(self, *, look_back_hours: int = 7 * 24) -> int:
        """Delete every hour of uploads whose links have expired; returns how many hours."""
        current = int(self.clock()) // 3600
        start = self._purged_through
        if start is None:
            start = current - look_back_hours
        hours = range(start + 1, current + 1)
        for hour in hours:
            await asyncio.to_thread(self.files.delete_prefix, f"{_PREFIX}{hour}")
        self._purged_through = current
        if hours:
            log.debug("uploads: purged hours %d..%d", hours.start, hours.stop - 1)
        return len(hours)
