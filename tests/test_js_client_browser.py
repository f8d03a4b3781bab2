"""space/static/hub-client.js and the /live page in a real headless Chromium against the real app."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testbed.harness import FAST_ENV, MS, AppProcess, free_port, running_app
from tests.browser import new_page, screenshot

pytestmark = pytest.mark.browser

WAIT_MS = 20000 * MS * 1000  # Playwright takes milliseconds
FAST_RECONNECT = "?baseDelayMs=100&maxDelayMs=800"


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppProcess]:
    with running_app(tmp_path_factory.mktemp("live")) as server:
        yield server


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    errors: list[str] = []
    tab = new_page(browser, errors)
    yield tab
    tab.close()
    assert not [e for e in errors if "WebSocket" not in e], (
        errors
    )  # refused reconnects are logged by Chromium


def news_titles(page: Any) -> list[str]:
    return page.locator("#news li[data-seq] a").all_inner_texts()


def wait_state(page: Any, client: str, state: str) -> None:
    page.wait_for_function(f"() => window.hub && window.hub.{client}.state === '{state}'", timeout=WAIT_MS)


def test_live_page_streams_prices_and_news(app: AppProcess, page: Any) -> None:
    page.goto(app.http + "/live")
    btc = page.locator('.card[data-symbol="BTC"] .price')
    btc.wait_for(timeout=WAIT_MS)
    first = btc.inner_text()
    page.wait_for_function(
        f"() => document.querySelector('.card[data-symbol=\"BTC\"] .price').innerText !== '{first}'",
        timeout=WAIT_MS,
    )
    assert page.locator(".card").count() == 20  # every default symbol
    assert page.locator("#sim-banner").is_visible()
    title = f"ETF approval lifts bitcoin {time.time_ns()}"
    assert app.post_news(title=title, source="CoinDesk").status_code == 201
    page.locator("#news li", has_text=title).wait_for(timeout=WAIT_MS)
    page.wait_for_timeout(600)  # let the new item's entrance animation finish before the picture
    screenshot(page, "live-page")


def test_live_page_shows_news_published_before_it_opened(app: AppProcess, page: Any) -> None:
    title = f"Published before the page opened {time.time_ns()}"
    assert app.post_news(title=title).status_code == 201
    page.goto(app.http + "/live")
    page.locator("#news li", has_text=title).wait_for(timeout=WAIT_MS)
    assert page.locator("#news li.empty").count() == 0


def test_backoff_is_full_jitter_capped_exponential(app: AppProcess, page: Any) -> None:
    page.goto(app.http + "/live")
    delays = page.evaluate("""async () => {
        const m = await import('/space/static/hub-client.js');
        const top = () => 0.999999, bottom = () => 0;
        const delay = (attempt, random) => m.backoffDelay(attempt, 500, 30000, random);
        return [0, 1, 2, 3, 10, 40].map((a) => [delay(a, top), delay(a, bottom)]);
    }""")
    assert [high for high, _ in delays] == [499, 999, 1999, 3999, 29999, 29999]
    assert all(low == 0 for _, low in delays)


def test_watchdog_reconnects_a_silent_connection(app: AppProcess, page: Any) -> None:
    connections: list[str] = []

    def route(ws: Any) -> None:
        connections.append(ws.url)
        server = ws.connect_to_server()
        if len(connections) == 1:
            server.on_message(lambda _message: None)  # the first link goes silent: nothing reaches the page

    page.route_web_socket(re.compile(r".*/ws/sentiment.*"), route)
    page.goto(app.http + "/live")
    page.evaluate("""async () => {
        const m = await import('/space/static/hub-client.js');
        const c = new m.HubSocket(m.endpointUrl('/ws/sentiment'),
                                  { heartbeatMs: 300, pongTimeoutMs: 300, baseDelayMs: 50, maxDelayMs: 200 });
        window.states = [];
        c.addEventListener('state', (e) => window.states.push(e.detail));
        window.sentiment = c;
        c.connect();
    }""")
    page.wait_for_function("() => window.sentiment.received > 0", timeout=WAIT_MS)
    states = page.evaluate("window.states")
    assert {"state": "waiting", "code": 4000} in [{k: s.get(k) for k in ("state", "code")} for s in states]
    assert len(connections) >= 2


def test_client_resumes_news_without_loss_after_server_restart(browser: Any, tmp_path: Path) -> None:
    app = AppProcess(port=free_port(), data_dir=tmp_path, env=dict(FAST_ENV)).start()
    page = new_page(browser)
    held_off = {"on": False}
    news_urls: list[str] = []

    def route(ws: Any) -> None:
        news_urls.append(ws.url)
        if held_off["on"]:
            ws.close(code=1013, reason="held off by the test")
        else:
            ws.connect_to_server()

    try:
        page.route_web_socket(re.compile(r".*/ws/news.*"), route)
        page.goto(app.http + "/live" + FAST_RECONNECT)
        wait_state(page, "news", "open")
        app.post_news(title="before restart")
        page.locator("#news li", has_text="before restart").wait_for(timeout=WAIT_MS)

        held_off["on"] = True  # keep the client away while the new server publishes
        app.stop()
        page.wait_for_function("() => window.hub.news.state !== 'open'", timeout=WAIT_MS)
        app.start()
        seqs = [app.post_news(title=f"while away {i}").json()["seq"] for i in range(3)]
        page.wait_for_timeout(1000)
        assert "while away 0" not in news_titles(page)

        resumed_from = len(news_urls)
        held_off["on"] = False
        for i in range(3):
            page.locator("#news li", has_text=f"while away {i}").wait_for(timeout=WAIT_MS)
        assert any("since=" in url and "epoch=" in url for url in news_urls[resumed_from:])
        app.post_news(title="after resume")
        page.locator("#news li", has_text="after resume").wait_for(timeout=WAIT_MS)

        titles = news_titles(page)
        assert sorted(titles) == sorted(set(titles)), "a news item was delivered twice"
        shown = [
            int(s)
            for s in page.locator("#news li[data-seq]").evaluate_all("els => els.map(e => e.dataset.seq)")
        ]
        assert shown == sorted(shown, reverse=True) and seqs[0] == seqs[-1] - 2
        assert shown == list(range(shown[0], shown[0] - len(shown), -1)), "seq has a hole"
        wait_state(page, "market", "open")  # the price socket came back and re-subscribed
        btc = page.locator('.card[data-symbol="BTC"] .price').inner_text()
        page.wait_for_function(
            f"() => document.querySelector('.card[data-symbol=\"BTC\"] .price').innerText !== '{btc}'",
            timeout=WAIT_MS,
        )
        page.wait_for_timeout(600)
        screenshot(page, "live-page-after-restart")
    finally:
        page.close()
        app.stop()


def test_filter_holds_across_a_reconnect(app: AppProcess, page: Any) -> None:
    """News missed while away is replayed through the same keyword filter, once, in order."""
    routes: list[Any] = []
    held_off = {"on": False}

    def route(ws: Any) -> None:
        routes.append(ws)
        if held_off["on"]:
            ws.close(code=1013, reason="held off by the test")
        else:
            ws.connect_to_server()

    page.route_web_socket(re.compile(r".*/ws/news.*"), route)
    page.goto(app.http + "/live")
    page.evaluate("""async () => {
        const m = await import('/space/static/hub-client.js');
        const options = { keywords: ['bitcoin'], baseDelayMs: 50, maxDelayMs: 300 };
        const c = new m.HubSocket(m.endpointUrl('/ws/news'), options);
        window.titles = [];
        c.addEventListener('news', (e) => window.titles.push(e.detail.data.title));
        window.filtered = c;
        c.connect();
    }""")
    page.wait_for_function("() => window.filtered.state === 'open'", timeout=WAIT_MS)
    app.post_news(title="Bitcoin before the drop")
    page.wait_for_function("() => window.titles.length === 1", timeout=WAIT_MS)
    held_off["on"] = True
    routes[-1].close(code=1012, reason="test drops the link")
    app.post_news(title="Ether while away")
    app.post_news(title="Bitcoin while away")
    held_off["on"] = False
    page.wait_for_function("() => window.titles.length === 2", timeout=WAIT_MS)
    page.wait_for_timeout(500)
    assert page.evaluate("window.titles") == ["Bitcoin before the drop", "Bitcoin while away"]
    assert "keywords=bitcoin" in routes[-1].url and "since=" in routes[-1].url
