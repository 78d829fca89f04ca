"""``GET /files/{key}``: stored files behind expiring signed URLs, with HTTP Range support.

The bytes come from the file store, local or S3 alike: a range is read from the store (an S3
GetObject with that Range), never the whole file. ``HEAD`` answers what GET would (status,
Content-Length, ETag, Range) and reads no bytes at all.
"""

from __future__ import annotations

import asyncio
import re
from email.utils import formatdate
from typing import Annotated

from fastapi import APIRouter, Header, Query
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import iterate_in_threadpool

from vidgate.api.deps import ServicesDep
from vidgate.errors import NotFound
from vidgate.media.files import FileInfo, media_type
from vidgate.services import Services

router = APIRouter(tags=["files"])

_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
GONE = "This file is no longer stored."


def byte_range(header: str | None, info: FileInfo, if_range: str | None) -> tuple[int, int] | None:
    """The one range asked for, as inclusive offsets; None for the whole file.

    Raises ``ValueError`` when the range cannot be satisfied. Several ranges, or a range of
    another unit, get the whole file (RFC 9110 lets a server ignore Range).
    """
    if header is None or info.size == 0:
        return None
    if if_range is not None and if_range != info.etag:
        return None  # the client's copy is of another version: send it all
    match = _RANGE.fullmatch(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # the last N bytes
        suffix = int(last)
        if suffix == 0:
            raise ValueError(header)
        return max(0, info.size - suffix), info.size - 1
    start = int(first)
    end = info.size - 1 if not last else min(int(last), info.size - 1)
    if start >= info.size or end < start:
        raise ValueError(header)
    return start, end


FileQuery = Annotated[str | None, Query()]
RangeHeader = Annotated[str | None, Header(alias="range", include_in_schema=False)]
IfRangeHeader = Annotated[str | None, Header(include_in_schema=False)]


@router.get("/files/{key:path}", openapi_extra={"security": []})
async def download(
    key: str,
    services: ServicesDep,
    expires: FileQuery = None,
    signature: FileQuery = None,
    range_header: RangeHeader = None,
    if_range: IfRangeHeader = None,
) -> Response:
    return await answer(services, key, expires, signature, range_header, if_range, body=True)


@router.head("/files/{key:path}", openapi_extra={"security": []})
async def download_head(
    key: str,
    services: ServicesDep,
    expires: FileQuery = None,
    signature: FileQuery = None,
    range_header: RangeHeader = None,
    if_range: IfRangeHeader = None,
) -> Response:
    """What GET would answer (status, length, ETag, range), without reading the file."""
    return await answer(services, key, expires, signature, range_header, if_range, body=False)


async def answer(
    services: Services,
    key: str,
    expires: str | None,
    signature: str | None,
    range_header: str | None,
    if_range: str | None,
    *,
    body: bool,
) -> Response:
    services.signer.verify(key, expires, signature, now=services.clock())
    files = services.files
    info = await asyncio.to_thread(files.stat, key)
    if info is None:
        raise NotFound(GONE)
    headers = {
        "accept-ranges": "bytes",
        "etag": info.etag,
        "last-modified": formatdate(info.modified, usegmt=True),
        "content-disposition": f'attachment; filename="{key.rpartition("/")[2]}"',
    }
    try:
        wanted = byte_range(range_header, info, if_range)
    except ValueError:
        headers["content-range"] = f"bytes */{info.size}"
        return Response(status_code=416, headers=headers)
    start, end = wanted if wanted is not None else (0, info.size - 1)
    if info.size == 0:
        return Response(b"", media_type=media_type(key), headers=headers)
    status = 206 if wanted is not None else 200
    headers["content-length"] = str(end - start + 1)
    if wanted is not None:
        headers["content-range"] = f"bytes {start}-{end}/{info.size}"
    if not body:
        # Content-Length given, the body left out: Response keeps the length it is handed.
        return Response(status_code=status, media_type=media_type(key), headers=headers)
    chunks = await asyncio.to_thread(files.open_range, key, start, end)
    if chunks is None:
        raise NotFound(GONE)
    return StreamingResponse(
        iterate_in_threadpool(chunks),
        status_code=status,
        media_type=media_type(key),
        headers=headers,
    )
