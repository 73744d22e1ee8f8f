"""Debian's Chromium driven by Playwright for Python (never `playwright install`), for the dashboard's tests."""

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"
# Every Content-Security-Policy violation the page causes becomes a console error (so the "no console errors"
# checks also mean "nothing the policy blocked"), prefixed so that a test can pick them out.
CSP_VIOLATION = "CSP violation"
_REPORT_CSP_VIOLATIONS = f"""
document.addEventListener("securitypolicyviolation", (event) => {{
  console.error(`{CSP_VIOLATION}: ${{event.effectiveDirective}} blocked ${{event.blockedURI || "inline"}}`);
}});
"""


@dataclass
class BrowserLog:
    """What the page said on its console and the errors it threw, for `no console errors` checks."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.console_errors.append(f"{message.text} ({message.location.get('url', '')})")

    @property
    def errors(self) -> list[str]:
        return self.console_errors + self.page_errors

    @property
    def csp_violations(self) -> list[str]:
        return [error for error in self.console_errors if error.startswith(CSP_VIOLATION)]


def require_chromium() -> None:
    # In CI the browser tests must run, never skip: a missing browser is a failure that says how to fix it.
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium (apt-get install chromium)")


@pytest.fixture
async def chromium() -> AsyncIterator[Browser]:
    require_chromium()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
async def browser_page(chromium: Browser) -> AsyncIterator[tuple[Page, BrowserLog]]:
    """A fresh page (desktop size) and the log of its console errors, CSP violations included."""
    context = await chromium.new_context(viewport={"width": 1440, "height": 1000})
    await context.add_init_script(_REPORT_CSP_VIOLATIONS)
    page = await context.new_page()
    log = BrowserLog()
    page.on("console", log.on_console)
    page.on("pageerror", lambda error: log.page_errors.append(str(error)))
    try:
        yield page, log
    finally:
        await context.close()


async def screenshot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path
