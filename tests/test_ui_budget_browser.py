"""A visitor's own page, in Chromium, never runs out of the per-client budget the UI's API now pays from."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from testbed.harness import MS, running_app
from tests.browser import launch_browser, new_page

pytestmark = pytest.mark.browser

LOAD_MS = 30000 * MS * 1000  # Playwright takes milliseconds
VISIT_S = 15000 * MS


def test_a_visitor_loading_the_page_twice_and_polling_every_tab_is_never_refused(tmp_path: Path) -> None:
    """One token a second and ten at once: far below the default, still enough for the page's own polling."""
    with running_app(tmp_path, ENABLE_UI="1", REST_RATE_PER_S="1", REST_BURST="10") as app, \
            launch_browser() as browser:
        refused: list[str] = []
        page = new_page(browser)
        page.on("response", lambda r: refused.append(f"{r.status} {r.url}") if r.status in (429, 503) else None)
        for _ in range(2):
            page.goto(app.http + "/", timeout=LOAD_MS)
            page.locator("#market-table").wait_for(timeout=LOAD_MS)
        before = page.locator("#market-table").inner_text()
        deadline = time.monotonic() + VISIT_S
        tabs: list[Any] = ["News", "Sentiment", "Models", "System", "Market"]
        while time.monotonic() < deadline:
            page.get_by_role("tab", name=tabs[0]).click()
            tabs = tabs[1:] + tabs[:1]
            page.wait_for_timeout(1000)
        page.get_by_role("tab", name="Market").click()
        page.wait_for_timeout(2000)
        assert page.locator("#market-table").inner_text() != before  # the pulse kept refreshing
        assert refused == []
        page.close()
