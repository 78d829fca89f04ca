"""``POST /v1/files``: upload an image, get a URL to put in ``image_urls`` (valid 24 h)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile
from starlette.requests import ClientDisconnect
from starlette.types import Message

from vidgate.api.deps import PrincipalDep, UploadsDep
from vidgate.errors import InvalidRequest, RequestTooLarge
from vidgate.media.images import DEFAULT_MAX_BYTES
from vidgate.media.uploads import Upload

router = APIRouter(tags=["files"])

# Room for the multipart framing around a file of the largest accepted size.
_BODY_LIMIT = DEFAULT_MAX_BYTES + 64 * 1024


class FileObject(BaseModel):
    object: Literal["file"] = "file"
    id: str = Field(description="file-... : this upload's id")
    url: str = Field(description="Put this in image_urls; it works until expires_at")
    filename: str | None
    bytes: int
    content_type: str
    width: int
    height: int
    created: int
    expires_at: int


_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "A JPEG, PNG or WebP image of at most 10 MB",
                        }
                    },
                }
            }
        },
    }
}


async def _capped_body(request: Request) -> bytes:
    """The whole body, refused with 413 as soon as it passes the limit (nothing spooled)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > _BODY_LIMIT:
        raise RequestTooLarge(f"Uploads are at most {DEFAULT_MAX_BYTES} bytes.", param="file")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > _BODY_LIMIT:
                raise RequestTooLarge(
                    f"Uploads are at most {DEFAULT_MAX_BYTES} bytes.", param="file"
                )
            chunks.append(chunk)
    except ClientDisconnect:
        raise InvalidRequest("The upload was cut off.", param="file") from None
    return b"".join(chunks)


def _replay(request: Request, body: bytes) -> Request:
    """The same request, its body served from memory to the multipart parser."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(request.scope, receive)


async def _one_file(request: Request) -> tuple[bytes, str | None]:
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise InvalidRequest(
            "Send the image as multipart/form-data in a field named 'file'.", param="file"
        )
    body = await _capped_body(request)
    try:
        form = await _replay(request, body).form(max_files=1, max_fields=10)
    except Exception:  # the parser's own errors: a malformed or oversized form
        raise InvalidRequest(  # the parser's wording names its internals: not passed on
            "The form could not be read as multipart/form-data.", param="file"
        ) from None
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidRequest("The form has no file in a field named 'file'.", param="file")
        return await upload.read(), upload.filename
    finally:
        await form.close()


def file_object(upload: Upload) -> FileObject:
    return FileObject(
        id=upload.id,
        url=upload.url,
        filename=upload.filename,
        bytes=upload.size,
        content_type=upload.info.mime_type,
        width=upload.info.width,
        height=upload.info.height,
        created=upload.created,
        expires_at=upload.expires_at,
    )


@router.post("/v1/files", response_model=FileObject, openapi_extra=_UPLOAD_BODY)
async def upload_file(request: Request, principal: PrincipalDep, uploads: UploadsDep) -> FileObject:
    """Upload a JPEG, PNG or WebP image (at most 10 MB) for use in ``image_urls`` for 24 h.

    The image is checked like a fetched one: by its bytes, its pixel count, and that it is a
    still picture.
    """
    data, filename = await _one_file(request)
    return file_object(await uploads.store(data, filename))
