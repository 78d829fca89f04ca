"""The dashboard's routes over ASGI (no browser): public, headers, and out of the API's way."""

from __future__ import annotations

import re

import httpx

from support import assert_error


async def test_the_page_is_public_and_locked_down_by_its_headers(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/", headers={"Authorization": ""})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert '<script src="dashboard/static/app.js" defer></script>' in response.text
    assert 'name="viewport"' in response.text
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "'unsafe-inline'" not in policy
    assert "frame-ancestors 'none'" in policy
    assert "media-src 'self' http://testserver" in policy
    # Input thumbnails are signed links, like results: from the same place.
    assert "img-src 'self' blob: data: http://testserver" in policy
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "set-cookie" not in response.headers


async def test_the_page_has_no_inline_script_style_or_handlers(client: httpx.AsyncClient) -> None:
    html = (await client.get("/")).text
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)
    assert "<style" not in html
    assert not re.search(r"\son[a-z]+=", html)
    assert " style=" not in html


async def test_its_static_files_are_served_with_their_types(client: httpx.AsyncClient) -> None:
    for name, media_type in (
        ("app.js", "text/javascript; charset=utf-8"),
        ("style.css", "text/css; charset=utf-8"),
        ("favicon.svg", "image/svg+xml"),
    ):
        response = await client.get(f"/dashboard/static/{name}", headers={"Authorization": ""})
        assert response.status_code == 200, name
        assert response.headers["content-type"] == media_type
        assert response.headers["x-content-type-options"] == "nosniff"


async def test_the_script_never_writes_html_or_persistent_storage(
    client: httpx.AsyncClient,
) -> None:
    script = (await client.get("/dashboard/static/app.js")).text
    for forbidden in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write"):
        assert forbidden not in script
    assert not re.search(r"localStorage\s*[.\[]", script)
    assert "document.cookie" not in script
    assert "sessionStorage.setItem" in script


async def test_other_paths_keep_the_error_envelope(client: httpx.AsyncClient) -> None:
    for path in (
        "/dashboard/static/missing.js",
        "/dashboard/static/index.html",
        "/dashboard/static/..%2F__init__.py",
        "/dashboard/static/../pages.py",
        "/dashboard",
        "/nothing-here",
    ):
        assert_error(await client.get(path), 404, "not_found")
    assert_error(await client.post("/"), 405, "method_not_allowed")


async def test_the_dashboard_stays_out_of_the_openapi_document(
    client: httpx.AsyncClient,
) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert "/" not in paths
    assert not [path for path in paths if path.startswith("/dashboard")]
