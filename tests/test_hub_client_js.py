"""clients/js/hub-client.js in Node against a scripted socket: the resume rules the Python client follows.

Each test runs one small script under `node` with a fake WebSocket the script opens, feeds and drops,
and reads back one JSON line. The scenarios that the Python client's `ResumeState` can take too are
checked against it, so the two clients drop and deliver the same frames.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import pytest

from crypto_hub_client.resume import ResumeState
from testbed.harness import ROOT

CLIENT = ROOT / "clients" / "js" / "hub-client.js"
NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(NODE is None, reason="no `node` on PATH: apt-get install nodejs")

MARKET = "ws://hub.test/ws/market_data"
NEWS = "ws://hub.test/ws/news"

PRELUDE = """
import * as hub from %s;
class FakeSocket {
  constructor(url) { this.url = url; this.readyState = 0; this.sent = []; FakeSocket.all.push(this); }
  send(text) { this.sent.push(JSON.parse(text)); }
  close() { this.readyState = 3; }
  open() { this.readyState = 1; this.onopen(); }
  deliver(message) { this.onmessage({ data: JSON.stringify(message) }); }
  drop(code) { this.readyState = 3; this.onclose({ code, reason: "test" }); }
}
FakeSocket.all = [];
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const done = (value) => { console.log(JSON.stringify(value)); process.exit(0); };
const FAST = { WebSocket: FakeSocket, baseDelayMs: 1, maxDelayMs: 1 };
function collect(client) {
  const got = [];
  client.addEventListener("message", (e) => got.push(e.detail));
  return got;
}
"""


def run_node(body: str) -> Any:
    """Run `body` after the prelude; return the JSON it passed to `done(...)`."""
    script = PRELUDE % json.dumps(CLIENT.as_uri()) + body
    result = subprocess.run([NODE, "--input-type=module", "-e", script], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def deliver_all(url: str, frames: list[dict[str, Any]], options: dict[str, Any] | None = None) -> Any:
    """Feed `frames` to one open HubSocket; return what it delivered, its position and stats."""
    return run_node(f"""
        const c = new hub.HubSocket({json.dumps(url)}, {{ ...FAST, ...{json.dumps(options or {})} }});
        const got = collect(c);
        c.connect();
        const ws = FakeSocket.all[0];
        ws.open();
        for (const frame of {json.dumps(frames)}) ws.deliver(frame);
        c.close();
        done({{ got, lastSeq: c.lastSeq, epoch: c.epoch, stats: c.stats, url: ws.url }});
    """)


def python_delivers(url: str, frames: list[dict[str, Any]], **options: Any) -> list[dict[str, Any]]:
    state = ResumeState(url, **options)
    return [m for m in (state.accept(json.dumps(f)) for f in frames) if m is not None]


def price(symbol: str, seq: int, epoch: str = "e1") -> dict[str, Any]:
    return {"type": "price_update", "seq": seq, "epoch": epoch, "source": "test", "data": {"symbol": symbol}}


def news(seq: int, title: str = "bitcoin", epoch: str = "e1") -> dict[str, Any]:
    return {"type": "news", "seq": seq, "epoch": epoch, "data": {"title": title, "description": "", "source": "x"}}


SEQ_AHEAD = {"type": "error", "error": {"code": "SEQ_AHEAD", "message": "since is ahead", "details": None}}

SCENARIOS = {
    # The outbox coalesces prices per symbol: ETH's next price may carry a lower seq than BTC's last.
    "prices_per_symbol": (MARKET, [price("BTC", 5), price("ETH", 3), price("BTC", 5), price("ETH", 3),
                                   price("ETH", 6)], {}),
    "news_replayed_twice": (NEWS, [news(1), news(2), news(2), news(1), news(3)], {}),
    "epoch_restarts_counting": (NEWS, [news(8), news(1, epoch="e2"), news(2, epoch="e2")], {}),
    "saved_position_skips_older": (NEWS, [news(4), news(5), news(6)], {"since": 5, "epoch": "e1"}),
    "seq_ahead_forgets_position": (NEWS, [SEQ_AHEAD, news(3), news(4)], {"since": 50, "epoch": "e1"}),
}


@pytest.mark.parametrize("name", SCENARIOS)
def test_js_client_delivers_what_the_python_client_delivers(name: str) -> None:
    url, frames, options = SCENARIOS[name]
    delivered = deliver_all(url, frames, options)["got"]
    assert delivered == python_delivers(url, frames, **options)


def test_saved_position_goes_in_the_first_url() -> None:
    result = deliver_all(NEWS, [], {"since": 42, "epoch": "e7"})
    assert "since=42" in result["url"] and "epoch=e7" in result["url"]


def test_seq_ahead_resets_the_position_to_the_live_stream() -> None:
    result = deliver_all(NEWS, [SEQ_AHEAD, news(3)], {"since": 50, "epoch": "e1"})
    assert (result["lastSeq"], result["epoch"]) == (3, "e1")


def test_duplicates_and_filtered_news_are_counted() -> None:
    frames = [news(1, "bitcoin up"), news(1, "bitcoin up"), news(2, "ether down")]
    stats = deliver_all(NEWS, frames, {"keywords": ["bitcoin"]})["stats"]
    assert (stats["messages"], stats["duplicatesDropped"], stats["filteredLocally"]) == (1, 1, 1)


def test_reconnect_resumes_from_the_last_seq() -> None:
    urls = run_node("""
        const c = new hub.HubSocket("ws://hub.test/ws/news", FAST);
        c.connect();
        FakeSocket.all[0].open();
        FakeSocket.all[0].deliver({ type: "news", seq: 7, epoch: "e1", data: { title: "t" } });
        FakeSocket.all[0].drop(1006);
        await sleep(50);
        c.close();
        done(FakeSocket.all.map((ws) => ws.url));
    """)
    assert len(urls) == 2 and "since=7" in urls[1] and "epoch=e1" in urls[1]


@pytest.mark.parametrize(("code", "final"), [(1002, True), (1003, True), (1007, True), (1008, True), (1009, True),
                                             (1010, True), (1001, False), (1006, False), (1012, False), (1013, False)])
def test_close_codes_the_python_client_does_not_retry_are_final(code: int, final: bool) -> None:
    state = run_node(f"""
        const c = new hub.HubSocket("ws://hub.test/ws/news", FAST);
        c.connect();
        FakeSocket.all[0].open();
        FakeSocket.all[0].drop({code});
        const state = c.state;
        c.close();
        done(state);
    """)
    assert state == ("closed" if final else "waiting")


def test_large_subscription_is_sent_in_requests_of_500() -> None:
    sizes = run_node("""
        const symbols = Array.from({ length: 1200 }, (_, i) => `S${i}`);
        const c = new hub.HubSocket("ws://hub.test/ws/market_data", { ...FAST, symbols });
        c.connect();
        FakeSocket.all[0].open();
        c.close();
        done(FakeSocket.all[0].sent.filter((m) => m.action === "subscribe").map((m) => m.symbols.length));
    """)
    assert sizes == [500, 500, 200]


def test_backoff_options_are_checked_in_the_constructor() -> None:
    error = run_node("""
        try { new hub.HubSocket("ws://hub.test/ws/news", { baseDelayMs: 1000, maxDelayMs: 10 }); done(null); }
        catch (err) { done(`${err.name}: ${err.message}`); }
    """)
    assert error.startswith("RangeError: expected 0 < baseDelayMs <= maxDelayMs")
