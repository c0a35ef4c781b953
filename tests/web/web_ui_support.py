"""Helpers for the web UI tests: real recordings, stored voices, and Debian's chromium driven
by Playwright on a thread of its own.

Playwright's sync API keeps an event loop running on the thread that uses it, and Django
refuses database calls from a thread with a running event loop. So each browser session runs
on its own thread (`run_browser`), and the tests set up and check the database outside it.
"""

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings as django_settings

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking"]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 375, "height": 812}
SCREENSHOTS = Path(django_settings.BASE_DIR) / "var" / "screenshots"
# Bounds that only stop a test that would otherwise hang; nothing is timed.
BROWSER_WAIT_MS = 60_000
THREAD_WAIT_S = 240


# --- The browser ----------------------------------------------------------------------------------


def _run_browser_here(
    base_url: str,
    steps: Callable[[Any], Any],
    login: tuple[str, str] | None,
    viewport: dict[str, int],
) -> Any:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(base_url=base_url, viewport=viewport)
            page = context.new_page()
            page.set_default_timeout(BROWSER_WAIT_MS)
            if login is not None:
                log_in(page, *login)
            return steps(page)
        finally:
            browser.close()


def log_in(page: Any, username: str, password: str) -> None:
    page.goto("/login/?next=/voice-cloning")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/voice-cloning")


def run_browser(
    base_url: str,
    steps: Callable[[Any], Any],
    *,
    login: tuple[str, str] | None = ("alice", "alice-pass-1"),
    viewport: dict[str, int] = DESKTOP,
) -> Any:
    """Run `steps(page)` in a fresh chromium on its own thread, signed in unless login is None;
    return what it returns, raise what it raises."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = _run_browser_here(base_url, steps, login, viewport)
        except BaseException as exc:  # handed to the test's thread
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="browser", daemon=True)
    thread.start()
    thread.join(timeout=THREAD_WAIT_S)
    if thread.is_alive():
        raise TimeoutError("the browser steps did not finish")
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def screenshot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
