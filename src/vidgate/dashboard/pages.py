"""Serves the dashboard page at ``/``, and its files and ES modules under ``/dashboard/static/``.

The page holds no data and needs no key: everything it shows, its script fetches from the
public API with the key the user typed, kept in the tab's sessionStorage.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import APIRouter
from fastapi.responses import FileResponse, Response

from vidgate.api.deps import SettingsDep
from vidgate.errors import NotFound

router = APIRouter(include_in_schema=False)

STATIC_DIR = Path(__file__).parent / "static"
MODULES_DIR = STATIC_DIR / "js"
MEDIA_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}
# Only these files are served: a name is looked up here, never joined to a path unchecked.
STATIC_NAMES = frozenset({"style.css", "favicon.svg"})
# A module's name is a plain lowercase file name (no dot but its ".js", no slash): it can only
# name a file in MODULES_DIR itself.
MODULE_NAME = re.compile(r"[a-z][a-z0-9-]*\.js")
COMMON_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def content_security_policy(public_url: str) -> str:
    """No inline script or style; data only from this origin (and where result links point)."""
    files = _origin(public_url)
    return "; ".join(
        (
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            # Input thumbnails are signed links like results: from where those point.
            f"img-src 'self' blob: data: {files}",
            f"media-src 'self' {files}",
            f"connect-src 'self' {files}",
            "form-action 'self'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
        )
    )


@router.get("/")
async def page(settings: SettingsDep) -> Response:
    body = (STATIC_DIR / "index.html").read_bytes()
    headers = {
        **COMMON_HEADERS,
        "Content-Security-Policy": content_security_policy(settings.base_url),
        "X-Frame-Options": "DENY",
    }
    return Response(body, media_type="text/html; charset=utf-8", headers=headers)


@router.get("/dashboard/static/{name}")
async def static_file(name: str) -> FileResponse:
    if name not in STATIC_NAMES:
        raise NotFound("There is nothing at this path.")
    path = STATIC_DIR / name
    return FileResponse(path, media_type=MEDIA_TYPES[path.suffix], headers=COMMON_HEADERS)


@router.get("/dashboard/static/js/{name}")
async def module_file(name: str) -> FileResponse:
    if MODULE_NAME.fullmatch(name) is None or not (MODULES_DIR / name).is_file():
        raise NotFound("There is nothing at this path.")
    path = MODULES_DIR / name
    return FileResponse(path, media_type=MEDIA_TYPES[".js"], headers=COMMON_HEADERS)
