"""The HTTP surface: nosniff everywhere, no-store on secrets, full Allow headers, no
trailing-slash redirects, and /docs served from this server under a strict CSP."""

from __future__ import annotations

import re
import time
from html.parser import HTMLParser

import httpx
import pytest
from fastapi import FastAPI

from support import assert_error
from vidgate.api import errors
from vidgate.api.security_headers import HeaderedFastAPI
from vidgate.services import Services

SEED_REQUEST = {"model": "veo3.1-fast", "prompt": "A cat playing piano"}
NO_KEY = {"Authorization": ""}


async def test_every_kind_of_answer_says_nosniff(
    client: httpx.AsyncClient, services: Services
) -> None:
    services.files.put_bytes("results/task-unified-1-abcdefgh.mp4", b"0" * 100)
    link = services.signer.sign(
        "results/task-unified-1-abcdefgh.mp4", expires=int(time.time()) + 60
    )
    answers = {
        "json": await client.get("/v1/models"),
        "401": await client.get("/v1/models", headers={"Authorization": "Bearer sk-wrong"}),
        "404": await client.get("/no/such/path"),
        "405": await client.delete("/v1/models"),
        "400": await client.post("/v1/videos/generations", json={"model": "veo3.1-fast"}),
        "file": await client.get(link, headers=NO_KEY),
        "file 403": await client.get(link.replace("signature=", "signature=0"), headers=NO_KEY),
        "dashboard": await client.get("/", headers=NO_KEY),
        "metrics": await client.get("/metrics", headers=NO_KEY),
        "health": await client.get("/healthz", headers=NO_KEY),
        "docs": await client.get("/docs", headers=NO_KEY),
        "openapi": await client.get("/openapi.json", headers=NO_KEY),
    }
    for what, response in answers.items():
        assert response.status_code < 500, what
        # Exactly one header: a route that set it too must not make it two.
        assert response.headers.get_list("x-content-type-options") == ["nosniff"], what


async def test_a_crash_page_says_nosniff_too() -> None:
    """The 500 is rendered by Starlette's outermost middleware, outside the user middleware."""
    app = HeaderedFastAPI()
    errors.install(app)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("a bug")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        response = await http.get("/boom")
    assert_error(response, 500, "internal_error")
    assert response.headers.get_list("x-content-type-options") == ["nosniff"]


async def test_answers_that_carry_a_key_or_secret_are_no_store(
    client: httpx.AsyncClient,
) -> None:
    account = await client.post("/admin/accounts", json={"name": "store-test"})
    assert account.status_code == 200
    assert account.json()["key"].startswith("sk-")
    answers = {
        "account": account,
        "own key": await client.post("/v1/keys", json={"name": "laptop"}),
        "admin key": await client.post(
            f"/admin/accounts/{account.json()['id']}/keys", json={"name": "ci"}
        ),
        "webhook secret": await client.get("/v1/webhook-secret"),
        "rotated secret": await client.post("/v1/webhook-secret/rotate"),
        "worker token": await client.post("/admin/worker-tokens", json={"name": "gpu-1"}),
    }
    for what, response in answers.items():
        assert response.status_code == 200, (what, response.text)
        assert response.headers.get("cache-control") == "no-store", what


def concrete(template: str) -> str:
    return re.sub(r"\{[^}]+\}", "some-id", template)


async def test_a_405_names_every_method_the_path_takes(client: httpx.AsyncClient) -> None:
    """For every path of the API, Allow is exactly the methods its OpenAPI entry lists."""
    schema = (await client.get("/openapi.json")).json()
    checked = 0
    for template, operations in schema["paths"].items():
        methods = {method.upper() for method in operations}
        unused = next(m for m in ("PATCH", "PUT", "DELETE", "POST") if m not in methods)
        response = await client.request(unused, concrete(template))
        assert_error(response, 405, "method_not_allowed")
        assert sorted(response.headers["allow"].split(", ")) == sorted(methods), template
        checked += 1
    assert checked > 20
    # The two the issue names, spelled out.
    assert (await client.delete("/v1/keys")).headers["allow"] == "GET, POST"
    assert (await client.delete("/admin/accounts")).headers["allow"] == "GET, POST"


async def test_an_unknown_method_token_gets_the_full_allow_too(client: httpx.AsyncClient) -> None:
    response = await client.request("ZZ00001", "/admin/worker-tokens")
    assert_error(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "GET, POST"


@pytest.mark.parametrize("path", ["/v1/models/", "/v1/tasks/", "/healthz/", "/admin/accounts/"])
async def test_a_trailing_slash_is_a_404_never_a_redirect_from_the_host_header(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path, headers={"Host": "evil.example"})
    assert_error(response, 404, "not_found")
    assert "location" not in response.headers


class Page(HTMLParser):
    """The scripts, stylesheets and icons a page loads, and any inline script or style."""

    def __init__(self) -> None:
        super().__init__()
        self.loads: list[str] = []
        self.inline: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "script":
            self._in = "script" if not found.get("src") else None
            if found.get("src"):
                self.loads.append(str(found["src"]))
        elif tag == "style":
            self._in = "style"
        elif tag == "link" and found.get("href"):
            self.loads.append(str(found["href"]))
        if any(name.startswith("on") or name == "style" for name in found):
            self.inline.append(f"<{tag}> attributes {sorted(found)}")

    def handle_endtag(self, tag: str) -> None:
        self._in = None

    def handle_data(self, data: str) -> None:
        if self._in is not None:
            self.inline.append(f"<{self._in}> {data.strip()[:40]}")


ASSET_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
}


async def test_docs_load_only_this_servers_files_under_a_strict_policy(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/docs", headers=NO_KEY)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    policy = [part.strip() for part in response.headers["content-security-policy"].split(";")]
    assert "default-src 'none'" in policy
    assert "script-src 'self'" in policy
    assert "style-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "unsafe" not in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY"

    page = Page()
    page.feed(response.text)
    assert page.inline == []
    assert len(page.loads) >= 3
    for url in page.loads:
        # Same origin: a path on this server, never another host or a scheme-relative URL.
        assert url.startswith("/"), url
        assert not url.startswith("//"), url
        asset = await client.get(url, headers=NO_KEY)
        assert asset.status_code == 200, url
        suffix = url[url.rindex(".") :]
        assert asset.headers["content-type"] == ASSET_TYPES[suffix], url
        assert asset.headers["x-content-type-options"] == "nosniff"
        assert len(asset.content) > 0
    scripts = [url for url in page.loads if url.endswith(".js")]
    bundle = await client.get(scripts[0], headers=NO_KEY)
    assert b"SwaggerUIBundle" in bundle.content
    init = await client.get(scripts[-1], headers=NO_KEY)
    assert "/openapi.json" in init.text


async def test_docs_serve_only_their_own_files_and_redoc_is_gone(
    client: httpx.AsyncClient,
) -> None:
    for path in (
        "/docs/assets/index.html",
        "/docs/assets/..%2F..%2Fpyproject.toml",
        "/docs/assets/swagger-ui.js.map",
        "/redoc",
        "/docs/oauth2-redirect",
    ):
        assert_error(await client.get(path, headers=NO_KEY), 404, "not_found")


def test_the_openapi_document_leaves_the_docs_pages_out(services: Services) -> None:
    from vidgate.app import create_app

    app: FastAPI = create_app(services, workers=0)
    paths = app.openapi()["paths"]
    assert not any(path.startswith(("/docs", "/redoc")) for path in paths)
