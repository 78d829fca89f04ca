"""Headless Chromium (Debian's, driven by Playwright) against a real ``vidgate serve`` process."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from support import ServerProcess

# Debian's chromium package; VIDGATE_TEST_CHROMIUM points elsewhere (another distribution).
CHROMIUM = Path(os.environ.get("VIDGATE_TEST_CHROMIUM", "/usr/bin/chromium"))
# Headless in a container: no setuid sandbox, no GPU, /dev/shm too small, nothing phoning home.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"

expect.set_options(timeout=20_000)


@pytest.fixture(scope="session")
def chromium_path() -> Path:
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing (Debian's chromium package: `make browser` installs it)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{reason}; in CI the browser tests must run", pytrace=False)
        pytest.skip(reason)
    return CHROMIUM


@pytest.fixture(scope="module")
def browser(chromium_path: Path) -> Iterator[Browser]:
    # Module scope, not session: Playwright's sync API holds an event loop open in this thread
    # while it runs, and the asyncio tests of other modules need the thread's loop free.
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(chromium_path), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for a module's tests (its admin key is E2E_KEY); each test makes its own data."""
    with ServerProcess(
        tmp_path_factory.mktemp("dashboard") / "data", {"VIDGATE_RATE_LIMIT_PER_MINUTE": "0"}
    ) as process:
        yield process


@pytest.fixture
def page_errors() -> list[str]:
    return []


@pytest.fixture
def page(browser: Browser, server: ServerProcess, page_errors: list[str]) -> Iterator[Page]:
    """A fresh browser context (no storage, no cookies) at 1280x800, on the server's origin.

    Script errors and Content-Security-Policy violations are collected in ``page_errors``;
    a test ends by asserting there were none.
    """
    context = browser.new_context(viewport={"width": 1280, "height": 800}, base_url=server.url)
    opened = context.new_page()
    opened.set_default_timeout(30_000)
    opened.on("pageerror", lambda error: page_errors.append(f"pageerror: {error}"))

    def on_console(message: object) -> None:
        text = getattr(message, "text", "")
        # Chromium logs every 4xx fetch as "Failed to load resource": those are the point of
        # some tests (a revoked key). Anything else the console reports as an error is a bug.
        if getattr(message, "type", "") == "error" and not text.startswith(
            "Failed to load resource"
        ):
            page_errors.append(f"console: {text}")

    opened.on("console", on_console)
    try:
        yield opened
    finally:
        context.close()


@pytest.fixture
def shot(page: Page, request: pytest.FixtureRequest) -> Callable[[str], Path]:
    """Save a screenshot as a test artifact under test-artifacts/browser/."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    test = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name)

    def save(step: str, *, full_page: bool = True) -> Path:
        path = ARTIFACTS / f"{test}--{step}.png"
        page.screenshot(path=str(path), full_page=full_page)
        print(f"screenshot: {path}")
        return path

    return save
