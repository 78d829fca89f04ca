"""``/docs``: Swagger UI served by vidgate itself, from a pinned package, under a strict CSP.

FastAPI's own page loads unpinned scripts from a CDN, on the origin where the dashboard keeps
its key in sessionStorage: a compromised release there could read it. Here every script and
style comes from this server (Swagger UI's files from the ``swagger-ui-bundle-v2`` package,
pinned in pyproject.toml), and the page's policy allows nothing else, no inline script
either: Swagger UI is started by a served file, ``swagger-init.js``.

There is no ``/redoc``: ReDoc's bundle inserts ``<style>`` elements at run time, which a
``style-src 'self'`` policy refuses.
"""

from __future__ import annotations

import functools
import importlib
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, Response

from vidgate.errors import NotFound

router = APIRouter(include_in_schema=False)

ASSETS = "/docs/assets"
OPENAPI_URL = "/openapi.json"

# Swagger UI's files, by the name they are served under: looked up, never joined unchecked.
PACKAGE_FILES = {
    "swagger-ui.css": "text/css; charset=utf-8",
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "favicon-32x32.png": "image/png",
}
INIT_NAME = "swagger-init.js"
INIT_SCRIPT = f"""\
// Starts Swagger UI on this server's OpenAPI document (a file: the page allows no inline script).
window.ui = SwaggerUIBundle({{
  url: "{OPENAPI_URL}",
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  deepLinking: true,
  showExtensions: true,
  showCommonExtensions: true,
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
}});
"""
PAGE = f"""\
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>vidgate API</title>
<link rel="stylesheet" href="{ASSETS}/swagger-ui.css">
<link rel="icon" type="image/png" href="{ASSETS}/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{ASSETS}/swagger-ui-bundle.js"></script>
<script src="{ASSETS}/{INIT_NAME}"></script>
</body>
</html>
"""
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",  # the OpenAPI document, and "Try it out" on this server
        "form-action 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    )
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
ASSET_HEADERS = {"Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"}


@functools.cache
def swagger_ui_dir() -> Path:
    """The folder of Swagger UI's files inside the installed package."""
    package = importlib.import_module("swagger_ui_bundle")
    return Path(str(package.swagger_ui_path))


@router.get("/docs")
async def page() -> Response:
    return Response(PAGE, media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)


@router.get(ASSETS + "/{name}")
async def asset(name: str) -> Response:
    if name == INIT_NAME:
        return Response(
            INIT_SCRIPT, media_type="text/javascript; charset=utf-8", headers=ASSET_HEADERS
        )
    media_type = PACKAGE_FILES.get(name)
    if media_type is None:
        raise NotFound("There is nothing at this path.")
    return FileResponse(swagger_ui_dir() / name, media_type=media_type, headers=ASSET_HEADERS)
