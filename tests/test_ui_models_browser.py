"""The Models tab in a real headless Chromium, the models on and nothing about them set."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from inference.catalog import CATALOG
from testbed.harness import FAST_ENV, MS, AppProcess, running_app
from tests.browser import launch_browser, new_page, screenshot

pytestmark = pytest.mark.browser

LOAD_MS = 30000 * MS * 1000
LIVE_MS = 60000 * MS * 1000
STATES = ("available", "loading", "failed", "skipped")


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppProcess]:
    with running_app(tmp_path_factory.mktemp("ui-models"), ENABLE_UI="1", ENABLE_INFERENCE="1") as server:
        yield server


@pytest.fixture
def page(app: AppProcess) -> Iterator[Any]:
    errors: list[str] = []
    with launch_browser() as browser:
        tab = new_page(browser, errors)
        tab.goto(app.http + "/", timeout=LOAD_MS)
        tab.locator("#market-table").wait_for(timeout=LOAD_MS)
        tab.get_by_role("tab", name="Models").click()
        yield tab
        tab.close()
    assert not [e for e in errors if "Failed to load resource" not in e], errors


def test_models_tab_lists_every_catalog_model_with_its_state_on_a_default_start(page: Any) -> None:
    for model_id in CATALOG:
        row = page.locator(f'#models-table tr[data-model="{model_id}"]')
        row.wait_for(timeout=LIVE_MS)
        cells = row.locator("td")
        assert cells.nth(1).inner_text().strip() in STATES, model_id
        assert cells.last.inner_text().strip(), f"{model_id} has no reason"
    assert "skipped" in page.locator("#models-status .hub-pills").inner_text()
    screenshot(page, "tab-models-catalog")


def test_models_operator_control_shows_only_after_the_token_checks_out(page: Any) -> None:
    page.locator("#models-operator").get_by_text("Operator").click()
    token = page.locator("#models-admin-token textarea, #models-admin-token input").first
    token.fill("not the token")
    page.locator("#models-admin-unlock").click()
    page.locator("#models-admin-note").get_by_text("Wrong token").wait_for(timeout=LIVE_MS)
    assert not page.locator("#models-admin-load").is_visible()
    token.fill(FAST_ENV["ADMIN_TOKEN"])
    page.locator("#models-admin-unlock").click()
    page.locator("#models-admin-load").wait_for(state="visible", timeout=LIVE_MS)
    assert page.locator("#models-admin-unload").is_visible()
