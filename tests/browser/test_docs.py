"""/docs in headless Chromium: Swagger UI renders every operation and calls the API, loading
nothing from another origin and breaking no rule of its Content-Security-Policy."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, Request, expect

from support import E2E_KEY, ServerProcess

pytestmark = pytest.mark.slow


def test_docs_render_every_operation_and_try_one_under_their_policy(
    page: Page, server: ServerProcess, shot: Callable[..., Path], page_errors: list[str]
) -> None:
    loaded: list[str] = []
    page.on("request", lambda request: loaded.append(request.url))
    violations: list[str] = []
    page.on(
        "console",
        lambda message: violations.append(message.text) if "Refused" in message.text else None,
    )

    page.goto("/docs")
    schema = httpx.get(f"{server.url}/openapi.json", timeout=30).json()
    operations = sum(len(methods) for methods in schema["paths"].values())
    expect(page.locator(".opblock")).to_have_count(operations)
    expect(page.locator(".opblock-summary-path", has_text="/v1/videos/generations")).to_be_visible()

    # Authorize with a key and run GET /v1/models from the page: the call goes to this origin.
    page.get_by_role("button", name="Authorize").first.click()
    page.locator(".auth-container input").first.fill(E2E_KEY)
    page.locator(".auth-btn-wrapper button.authorize").click()
    page.locator(".auth-btn-wrapper button.btn-done").click()
    models = page.locator(
        ".opblock-get", has=page.locator(".opblock-summary-path", has_text="/v1/models")
    )
    models.first.locator(".opblock-summary").click()
    models.first.get_by_role("button", name="Try it out").click()
    models.first.get_by_role("button", name="Execute").click()
    expect(
        models.first.locator(".live-responses-table tbody .response-col_status").first
    ).to_have_text("200")
    shot("models-tried")

    assert loaded
    assert all(url.startswith(server.url + "/") for url in loaded), loaded
    assert violations == []
    assert page_errors == []


def test_docs_requests_never_leave_for_a_cdn(page: Page, server: ServerProcess) -> None:
    seen: list[Request] = []
    page.on("request", lambda request: seen.append(request))
    page.goto("/docs")
    expect(page.locator(".opblock").first).to_be_visible()
    scripts = {request.url for request in seen if request.resource_type == "script"}
    assert scripts == {
        f"{server.url}/docs/assets/swagger-ui-bundle.js",
        f"{server.url}/docs/assets/swagger-init.js",
    }
