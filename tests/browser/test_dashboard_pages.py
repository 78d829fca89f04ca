"""The dashboard's routes over ASGI (no browser): public, headers, and out of the API's way."""

from __future__ import annotations

import re

import httpx

from support import assert_error
from vidgate.dashboard.pages import MODULES_DIR

# The policy of the page, letter for letter (the ASGI client's origin is http://testserver).
POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' blob: data: http://testserver; media-src 'self' http://testserver; "
    "connect-src 'self' http://testserver; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)


async def test_the_page_is_public_and_locked_down_by_its_headers(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/", headers={"Authorization": ""})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert '<script type="module" src="dashboard/static/js/main.js"></script>' in response.text
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


async def test_the_pages_policy_is_exactly_the_strict_one(client: httpx.AsyncClient) -> None:
    response = await client.get("/")
    assert response.headers.get_list("content-security-policy") == [POLICY]
    assert response.headers["x-frame-options"] == "DENY"


async def test_the_page_has_no_inline_script_style_or_handlers(client: httpx.AsyncClient) -> None:
    html = (await client.get("/")).text
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)
    assert "<style" not in html
    assert not re.search(r"\son[a-z]+=", html)
    assert " style=" not in html


async def test_its_static_files_are_served_with_their_types(client: httpx.AsyncClient) -> None:
    for name, media_type in (
        ("style.css", "text/css; charset=utf-8"),
        ("favicon.svg", "image/svg+xml"),
        ("js/main.js", "text/javascript; charset=utf-8"),
    ):
        response = await client.get(f"/dashboard/static/{name}", headers={"Authorization": ""})
        assert response.status_code == 200, name
        assert response.headers["content-type"] == media_type
        assert response.headers["x-content-type-options"] == "nosniff"


async def test_every_module_is_served_as_javascript(client: httpx.AsyncClient) -> None:
    names = sorted(path.name for path in MODULES_DIR.glob("*.js"))
    assert "main.js" in names
    for name in names:
        response = await client.get(f"/dashboard/static/js/{name}", headers={"Authorization": ""})
        assert response.status_code == 200, name
        assert response.headers["content-type"] == "text/javascript; charset=utf-8", name
        assert response.headers["x-content-type-options"] == "nosniff", name
        assert response.text == (MODULES_DIR / name).read_text(), name


async def test_the_script_never_writes_html_evaluates_or_stores_persistently(
    client: httpx.AsyncClient,
) -> None:
    modules = {
        path.name: (await client.get(f"/dashboard/static/js/{path.name}")).text
        for path in MODULES_DIR.glob("*.js")
    }
    for name, script in modules.items():
        for forbidden in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write"):
            assert forbidden not in script, (name, forbidden)
        assert not re.search(r"\beval\s*\(|new Function\b", script), name
        assert not re.search(r"localStorage\s*[.\[]", script), name
        assert "document.cookie" not in script, name
    assert "sessionStorage.setItem" in modules["session.js"]


async def test_other_paths_keep_the_error_envelope(client: httpx.AsyncClient) -> None:
    for path in (
        "/dashboard/static/missing.js",
        "/dashboard/static/app.js",  # the one script before the modules
        "/dashboard/static/index.html",
        "/dashboard/static/..%2F__init__.py",
        "/dashboard/static/../pages.py",
        "/dashboard/static/js",
        "/dashboard/static/js/",
        "/dashboard/static/js/missing.js",
        "/dashboard/static/js/Main.js",
        "/dashboard/static/js/main.mjs",
        "/dashboard/static/js/.main.js",
        "/dashboard/static/js/main.js.map",
        "/dashboard/static/js/..%2Fstyle.css",
        "/dashboard/static/js/..%2F..%2Fpages.py",
        "/dashboard/static/js/%2E%2E",
        "/dashboard/static/js/../../pages.py",
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
