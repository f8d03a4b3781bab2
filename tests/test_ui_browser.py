"""The Gradio UI in a real headless Chromium: every tab fills itself with live data, in demo mode."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from testbed.harness import MS, AppProcess, running_app
from tests.browser import new_page, screenshot

pytestmark = pytest.mark.browser

# Playwright takes milliseconds; MS scales them like every other test time.
LOAD_MS = 30000 * MS * 1000
LIVE_MS = 15000 * MS * 1000


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppProcess]:
    with running_app(tmp_path_factory.mktemp("ui"), ENABLE_UI="1") as server:
        yield server


@pytest.fixture
def page(app: AppProcess, browser: Any) -> Iterator[Any]:
    errors: list[str] = []
    tab = new_page(browser, errors)
    tab.goto(app.http + "/", timeout=LOAD_MS)
    tab.locator("#market-table").wait_for(timeout=LOAD_MS)
    yield tab
    tab.close()
    assert not [e for e in errors if "Failed to load resource" not in e], errors


def open_tab(page: Any, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def text_changes(page: Any, selector: str, timeout_s: float = LIVE_MS / 1000) -> tuple[str, str]:
    """Wait until the text of `selector` differs from what it is now; return (before, after)."""
    before = page.locator(selector).inner_text()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        after = page.locator(selector).inner_text()
        if after != before:
            return before, after
        page.wait_for_timeout(200)
    raise AssertionError(f"{selector} stayed {before!r} for {timeout_s}s")


def test_market_tab_streams_prices_by_itself(page: Any) -> None:
    before, after = text_changes(page, '#market-table tr[data-symbol="BTC"]')
    assert "$" in after and "simulator" in after
    assert page.locator("#market-table tbody tr").count() == 20
    page.locator("#price-chart .js-plotly-plot").wait_for(timeout=LIVE_MS)
    page.locator("#market-gauge .js-plotly-plot").wait_for(timeout=LIVE_MS)
    assert "market cap" in page.locator("#market-summary").inner_text().lower()
    screenshot(page, "tab-market")


def test_news_tab_shows_published_item_without_interaction(app: AppProcess, page: Any) -> None:
    open_tab(page, "News")
    title = f"Bitcoin miners hold reserves {time.time_ns()}"
    assert (
        app.post_news(
            title=title,
            description="Hashrate at a record",
            source="CoinDesk",
            image_url="https://images.example/btc.jpg",
        ).status_code
        == 201
    )
    item = page.locator("#news-feed article", has_text=title)
    item.wait_for(timeout=LIVE_MS)
    assert "CoinDesk" in item.inner_text() and "unscored" in item.inner_text()
    assert item.locator("a").get_attribute("href").startswith("https://news.example/")
    screenshot(page, "tab-news")


def test_news_tab_filters_by_keyword_and_source(app: AppProcess, page: Any) -> None:
    app.post_news(title="Ethereum upgrade ships", source="Decrypt")
    app.post_news(title="Solana outage ends", source="The Block")
    open_tab(page, "News")
    page.locator("#news-feed article", has_text="Solana outage ends").wait_for(timeout=LIVE_MS)
    page.get_by_label("Keyword").fill("ethereum")
    page.wait_for_function(
        "() => !document.querySelector('#news-list').innerText.includes('Solana outage')", timeout=LIVE_MS
    )
    assert "Ethereum upgrade ships" in page.locator("#news-list").inner_text()
    page.get_by_label("Keyword").fill("")
    page.get_by_label("Source").click()
    page.get_by_role("option", name="The Block").click()
    page.wait_for_function(
        "() => !document.querySelector('#news-list').innerText.includes('Ethereum upgrade')", timeout=LIVE_MS
    )
    assert "Solana outage ends" in page.locator("#news-list").inner_text()


def test_sentiment_tab_says_what_is_missing(page: Any) -> None:
    open_tab(page, "Sentiment")
    page.locator("#sentiment-mood .hub-card").wait_for(timeout=LIVE_MS)
    for platform in ("twitter", "reddit"):
        card = page.locator(f'#sentiment-social [data-platform="{platform}"]')
        card.wait_for(timeout=LIVE_MS)
        assert card.locator(".reason").inner_text().strip() or card.locator(".hub-badge").count()
    for plot in ("#sentiment-gauge", "#fg-history", "#sentiment-trend"):
        page.locator(f"{plot} .js-plotly-plot").wait_for(timeout=LIVE_MS)
    screenshot(page, "tab-sentiment")


def test_models_tab_says_inference_is_off(page: Any) -> None:
    open_tab(page, "Models")
    page.locator("#models-empty").wait_for(timeout=LIVE_MS)
    assert "not running" in page.locator("#models-empty").inner_text()
    page.locator("#playground-text textarea").fill("Bitcoin ETF inflows hit a record")
    page.locator("#playground-score").click()
    page.locator("#playground-out #playground-off").wait_for(timeout=LIVE_MS)
    assert "Inference is off" in page.locator("#playground-out").inner_text()
    screenshot(page, "tab-models")


def test_system_tab_counts_go_up_by_themselves(page: Any) -> None:
    open_tab(page, "System")
    page.locator("#bus-table").wait_for(timeout=LIVE_MS)
    text_changes(page, "#bus-table")
    assert page.locator('#system-sources [data-source="simulator"]').count() == 1
    assert re.search(r"uptime\s+\d+[smhd]", page.locator("#system-overview").inner_text().lower())
    page.locator("#requests-chart .js-plotly-plot").wait_for(timeout=LIVE_MS)
    screenshot(page, "tab-system")


def test_api_tab_derives_ws_url_from_page_host(app: AppProcess, page: Any) -> None:
    open_tab(page, "API")
    base = f"ws://127.0.0.1:{app.port}"
    page.wait_for_function(
        f"() => document.querySelector('#ws-base-url')?.innerText === '{base}'", timeout=LIVE_MS
    )
    assert f'new HubSocket("{base}/ws/market_data"' in page.locator("#snippet-js").inner_text()
    assert f'websockets.connect("{base}/ws/market_data")' in page.locator("#snippet-python").inner_text()
    assert page.locator("#message-reference tr[data-message]").count() >= 14
    for link in ("#asyncapi-link", "#docs-link", "#live-link"):
        href = page.locator(link).get_attribute("href")
        assert httpx.get(app.http + href, timeout=10).status_code == 200
    screenshot(page, "tab-api")


def test_demo_banner_is_shown_in_demo_mode(page: Any) -> None:
    banner = page.locator("#hub-demo-banner")
    banner.wait_for(timeout=LIVE_MS)
    assert "simulated" in banner.inner_text() and "DATA_MODE=demo" in banner.inner_text()
