"""Browser fixtures: Playwright driving Debian's Chromium (``./dev test`` installs it).

Every page a test opens records console errors, uncaught exceptions and CSP violations
in ``page.problems`` (see :func:`problems`), so a test can assert that a page ran clean.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium per test module. Not per session: Playwright's sync API
    keeps an asyncio loop running in this thread while it is open, and tests elsewhere
    run their own loops with ``asyncio.run``."""
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser context (no cookies) at 1280 x 900, collecting problems."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    new_page = context.new_page()
    found: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        # A page answered with an error status on purpose (401 sign-in, 404, 422) is
        # logged by Chromium against the document itself: not a problem of the page.
        # The same line for a script, style or fetch the page loads is one.
        if message.text.startswith("Failed to load resource") and _is_document(
            message.location.get("url", ""), new_page.url
        ):
            return
        found.append(message.text)

    new_page.on("console", on_console)
    new_page.on("pageerror", lambda error: found.append(f"page error: {error}"))
    new_page.problems = found  # type: ignore[attr-defined]
    yield new_page
    context.close()


def _is_document(resource: str, page_url: str) -> bool:
    """Whether ``resource`` is the page's own document (query and fragment ignored)."""

    def bare(url: str) -> str:
        return url.partition("#")[0].partition("?")[0]

    return bare(resource) == bare(page_url)


def problems(page: Page) -> list[str]:
    """Console errors, uncaught exceptions and CSP violations the page reported."""
    found: list[str] = page.problems  # type: ignore[attr-defined]
    return list(found)


def screenshot(page: Page, name: str) -> Path:
    """Save a full-page screenshot as ``test-artifacts/<name>.png``."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
