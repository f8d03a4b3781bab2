"""Launch the system's headless Chromium for browser tests, and keep screenshots as test artifacts.

`playwright install` cannot download browsers here, so tests drive Debian's chromium (CHROMIUM_PATH
overrides). Screenshots go to artifacts/screenshots/ (git-ignored) for a person to look at.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testbed.harness import ROOT

__all__ = ["SCREENSHOTS", "chromium_path", "launch_browser", "new_page", "screenshot"]

SCREENSHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-dev-shm-usage",
]
VIEWPORT = {"width": 1400, "height": 1000}


def chromium_path() -> str | None:
    """Return the Chromium binary to drive, or None when the machine has none."""
    candidates = [
        os.environ.get("CHROMIUM_PATH"),
        "/usr/bin/chromium",
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
        shutil.which("google-chrome"),
    ]
    return next((c for c in candidates if c and Path(c).exists()), None)


@contextlib.contextmanager
def launch_browser() -> Iterator[Any]:
    """Yield a headless Chromium (playwright Browser); skip the test when none is installed."""
    sync_api = pytest.importorskip("playwright.sync_api")
    path = chromium_path()
    if path is None:
        pytest.skip("no Chromium binary: apt-get install chromium, or set CHROMIUM_PATH")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def new_page(browser: Any, errors: list[str] | None = None) -> Any:
    """Open a page at the test viewport; JavaScript errors and failed console messages go to `errors`."""
    page = browser.new_page(viewport=VIEWPORT)
    if errors is not None:
        page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
        page.on(
            "console",
            lambda msg: errors.append(f"console.{msg.type}: {msg.text}") if msg.type == "error" else None,
        )
    return page


def screenshot(page: Any, name: str, full_page: bool = True) -> Path:
    """Save a PNG of the page under artifacts/screenshots/ and return its path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path
