"""``GET /files/{key}``: stored files behind expiring signed URLs, with HTTP Range support."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse

from vidgate.api.deps import ServicesDep
from vidgate.errors import NotFound

router = APIRouter(tags=["files"])

MEDIA_TYPES = {"mp4": "video/mp4", "png": "image/png", "jpg": "image/jpeg", "webp": "image/webp"}


@router.get("/files/{key:path}", response_class=FileResponse, openapi_extra={"security": []})
async def download(
    key: str,
    services: ServicesDep,
    expires: Annotated[str | None, Query()] = None,
    signature: Annotated[str | None, Query()] = None,
) -> FileResponse:
    services.signer.verify(key, expires, signature, now=services.tasks.clock())
    path = services.files.path(key)
    if path is None:
        raise NotFound("This file is no longer stored.")
    media_type = MEDIA_TYPES.get(key.rpartition(".")[2], "application/octet-stream")
    return FileResponse(path, media_type=media_type, filename=path.name)
