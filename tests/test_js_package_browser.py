"""The packed JS client (npm pack, unpacked elsewhere) streams from the real app in a real headless Chromium.

A dashboard's page, served by a static server of its own on another port, imports the package by name
through an import map that points at the unpacked tarball: what this proves works is the artifact
`npm pack` makes, not clients/js/hub-client.js nor the copy the app serves.
"""

from __future__ import annotations

import contextlib
import functools
import json
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from testbed.harness import MS, AppProcess, running_app
from tests.browser import launch_browser, new_page
from tests.npm import npm_pack, unpack

pytestmark = pytest.mark.browser

WAIT_MS = 20000 * MS * 1000  # Playwright takes milliseconds
PACKAGE_NAME = "crypto-market-hub-client"

PAGE = """<!doctype html>
<meta charset="utf-8">
<title>dashboard</title>
<link rel="icon" href="data:,">
<script type="importmap">{"imports": {"%(name)s": "/package/hub-client.js"}}</script>
<script type="module">
import { HubSocket } from "%(name)s";
const hub = new URLSearchParams(location.search).get("hub");
window.prices = [];
window.titles = [];
const market = new HubSocket(`${hub}/ws/market_data`, { symbols: ["BTC"] });
market.addEventListener("price_update", (e) => window.prices.push(e.detail.data));
const news = new HubSocket(`${hub}/ws/news`, { keywords: ["packed"] });
news.addEventListener("news", (e) => window.titles.push(e.detail.data.title));
window.clients = { market: market.connect(), news: news.connect() };
</script>
"""


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def serve_folder(folder: Path) -> Iterator[str]:
    """Serve `folder` over HTTP on a free loopback port; yield its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, name="dashboard-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A static site holding the unpacked tarball at /package/ and a page that imports it."""
    root = tmp_path_factory.mktemp("dashboard")
    packed = tmp_path_factory.mktemp("pack")
    unpack(packed / npm_pack(packed)["filename"], root)
    (root / "index.html").write_text(PAGE % {"name": PACKAGE_NAME}, encoding="utf-8")
    with serve_folder(root) as base:
        yield base


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppProcess]:
    with running_app(tmp_path_factory.mktemp("packed-app")) as server:
        yield server


def test_packed_module_streams_prices_and_news_from_the_app(app: AppProcess, dashboard: str) -> None:
    with launch_browser() as browser:
        errors: list[str] = []
        page = new_page(browser, errors)
        scripts: list[str] = []
        page.on("request", lambda request: scripts.append(request.url) if request.url.endswith(".js") else None)
        page.goto(f"{dashboard}/index.html?hub={app.ws('')}")
        page.wait_for_function("() => window.prices && window.prices.length >= 2", timeout=WAIT_MS)
        page.wait_for_function("() => window.clients.news.state === 'open'", timeout=WAIT_MS)
        assert app.post_news(title="The packed client got this").status_code == 201
        page.wait_for_function("() => window.titles.length === 1", timeout=WAIT_MS)
        prices = page.evaluate("window.prices")
        page.close()
    assert {p["symbol"] for p in prices} == {"BTC"} and all(p["price"] > 0 for p in prices)
    assert scripts == [f"{dashboard}/package/hub-client.js"], json.dumps(scripts)
    assert not errors, errors
