"""With DATA_MODE=live no simulator runs, so neither the UI nor /live shows the demo banner."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.harness import MS, running_app
from tests.browser import launch_browser, new_page, screenshot

pytestmark = pytest.mark.browser

WAIT_MS = 30000 * MS * 1000  # Playwright takes milliseconds


def test_no_demo_banner_in_live_mode(tmp_path: Path) -> None:
    with running_app(tmp_path, ENABLE_UI="1", DATA_MODE="live") as app, launch_browser() as browser:
        page = new_page(browser)
        page.goto(app.http + "/")
        page.locator("#hub-pills", has_text="data mode: live").wait_for(timeout=WAIT_MS)
        page.wait_for_timeout(2500 * MS * 1000)  # a few pulses: the banner would be there by now
        assert page.locator("#hub-demo-banner").count() == 0
        assert "no live market provider has answered" in page.locator("#market-prices").inner_text()
        screenshot(page, "live-mode-ui")
        page.goto(app.http + "/live")
        page.wait_for_function("() => window.hub && window.hub.market.state === 'open'", timeout=WAIT_MS)
        assert page.locator("#sim-banner").is_hidden()
