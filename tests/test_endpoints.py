"""The five endpoints against a real app on a free port, with real WebSocket clients."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets

from testbed.harness import MS, AppProcess, recv_json, recv_until, running_app


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppProcess]:
    with running_app(tmp_path_factory.mktemp("endpoints"), MESSAGES_PER_SECOND="50", MESSAGE_BURST="60") as proc:
        yield proc


def _is(kind: str):
    return lambda m: m.get("type") == kind


def _z(stamp: str) -> bool:
    return stamp.endswith("Z") and "T" in stamp


async def test_monitoring_sends_status_on_connect_with_top_level_sections(app):
    async with websockets.connect(app.ws("/api/monitoring/ws")) as ws:
        msg = await recv_json(ws)
    assert msg["type"] == "system_status" and _z(msg["timestamp"]) and isinstance(msg["seq"], int)
    assert msg["stats"]["total_sources"] == msg["data_sources"]["total"] >= 1
    assert msg["database"]["online"] is True and _z(msg["database"]["last_check"])
    assert msg["agent_running"] is True
    sim = [s for s in msg["data_sources"]["sources"] if s["name"] == "simulator"]
    assert sim and sim[0]["status"] == "active" and msg["data_sources"]["simulated"] is True


async def test_monitoring_repeats_at_its_cadence_with_increasing_seq(app):
    async with websockets.connect(app.ws("/api/monitoring/ws")) as ws:
        first = await recv_json(ws)
        second = await recv_until(ws, _is("system_status"))
    assert second["seq"] > first["seq"]


async def test_requests_are_counted_for_real(app):
    for _ in range(5):
        httpx.get(f"{app.http}/health")
    async with websockets.connect(app.ws("/api/monitoring/ws")) as ws:
        await recv_json(ws)
        msg = await recv_until(ws, _is("system_status"))
    assert msg["stats"]["requests_last_minute"] >= 5
    assert msg["stats"]["requests_last_hour"] >= msg["stats"]["requests_last_minute"]


async def test_market_streams_only_subscribed_symbols_with_documented_fields(app):
    async with websockets.connect(app.ws("/ws/market_data")) as ws:
        await ws.send(json.dumps({"action": "subscribe", "symbols": ["BTC", "eth"], "id": 7}))
        ack = await recv_until(ws, _is("ack"))
        seen = set()
        for _ in range(10):
            msg = await recv_until(ws, _is("price_update"))
            seen.add(msg["data"]["symbol"])
    assert ack["data"]["symbols"] == ["BTC", "ETH"] and ack["id"] == 7
    assert seen == {"BTC", "ETH"}
    assert msg["source"] == "simulator"
    assert set(msg["data"]) >= {"symbol", "price", "change_24h", "change_7d", "volume_24h", "market_cap", "timestamp"}
    assert msg["data"]["price"] > 0 and _z(msg["data"]["timestamp"])


async def test_market_sends_nothing_before_subscribe(app):
    async with websockets.connect(app.ws("/ws/market_data")) as ws:
        with pytest.raises(TimeoutError):
            await recv_json(ws, timeout=600 * MS)


async def test_unsubscribe_stops_a_symbol(app):
    async with websockets.connect(app.ws("/ws/market_data")) as ws:
        await ws.send(json.dumps({"action": "subscribe", "symbols": ["BTC", "SOL"]}))
        await ws.send(json.dumps({"action": "unsubscribe", "symbols": ["SOL"]}))
        ack = await recv_until(ws, lambda m: m.get("type") == "ack" and m["action"] == "unsubscribe")
        await asyncio.sleep(300 * MS)  # let frames queued before the ack drain
        while True:
            try:
                await recv_json(ws, timeout=50 * MS)
            except TimeoutError:
                break
        symbols = {(await recv_until(ws, _is("price_update")))["data"]["symbol"] for _ in range(4)}
    assert ack["data"]["symbols"] == ["BTC"] and symbols == {"BTC"}


async def test_get_all_answers_with_every_tracked_symbol(app):
    async with websockets.connect(app.ws("/ws/market_data")) as ws:
        await ws.send(json.dumps({"action": "get_all"}))
        symbols = {(await recv_until(ws, _is("price_update")))["data"]["symbol"] for _ in range(20)}
    assert len(symbols) == 20


async def test_initial_symbols_from_query_string(app):
    async with websockets.connect(app.ws("/ws/market_data?symbols=DOGE")) as ws:
        msg = await recv_until(ws, _is("price_update"))
    assert msg["data"]["symbol"] == "DOGE"


async def test_price_cadence_is_one_per_interval_per_symbol(app):
    async with websockets.connect(app.ws("/ws/market_data")) as ws:
        await ws.send(json.dumps({"action": "subscribe", "symbols": ["BTC"]}))
        await recv_until(ws, _is("price_update"))
        started = time.monotonic()
        for _ in range(5):
            await recv_until(ws, _is("price_update"))
        elapsed = time.monotonic() - started
    assert elapsed > 4 * 0.2 * 0.7  # PRICE_INTERVAL_S=0.2: five updates cannot arrive at once


async def test_ping_gets_pong_with_id_on_every_endpoint(app):
    for path in ("/api/monitoring/ws", "/ws/market_data", "/ws/news", "/ws/sentiment", "/ws/huggingface"):
        async with websockets.connect(app.ws(path)) as ws:
            await ws.send(json.dumps({"type": "ping", "id": 42}))
            pong = await recv_until(ws, _is("pong"))
        assert pong["id"] == 42 and _z(pong["timestamp"]), path


async def test_sentiment_sends_update_on_connect_with_nulls_and_reasons(app):
    async with websockets.connect(app.ws("/ws/sentiment")) as ws:
        msg = await recv_until(ws, _is("sentiment_update"))
    data = msg["data"]
    assert set(data) == {"fear_greed", "social", "market"}
    assert data["fear_greed"]["value"] is None and data["fear_greed"]["reason"]
    assert set(data["social"]) == {"twitter", "reddit"}


async def test_huggingface_sends_models_status_on_connect(app):
    async with websockets.connect(app.ws("/ws/huggingface")) as ws:
        msg = await recv_until(ws, _is("models_status"))
    data = msg["data"]
    assert set(data) == {"total", "available", "loading", "failed", "skipped", "models"}
    assert data["total"] == data["available"] + data["loading"] + data["failed"] + data["skipped"]


async def test_news_is_published_to_subscribers_with_seq(app):
    async with websockets.connect(app.ws("/ws/news")) as ws:
        await asyncio.sleep(100 * MS)
        r = app.post_news(title="Bitcoin ETF inflows rise", description="Funds bought more.",
                          image_url="https://img.example/a.png")
        msg = await recv_until(ws, _is("news"))
    assert r.status_code == 201 and msg["seq"] == r.json()["seq"]
    data = msg["data"]
    assert data["title"] == "Bitcoin ETF inflows rise" and data["source"] == "Test Wire"
    assert data["image_url"] == "https://img.example/a.png" and _z(data["published_at"])
    assert set(data) >= {"title", "description", "url", "source", "published_at", "sentiment", "sentiment_score",
                         "image_url"}


async def test_news_filter_matches_keywords_case_insensitively(app):
    async with websockets.connect(app.ws("/ws/news")) as ws:
        await ws.send(json.dumps({"action": "filter", "keywords": ["SOLANA"]}))
        await recv_until(ws, _is("ack"))
        app.post_news(title="Ethereum upgrade ships", description="nothing about the other chain")
        app.post_news(title="Network news", description="solana validators vote")
        msg = await recv_until(ws, _is("news"))
    assert msg["data"]["title"] == "Network news"


async def test_news_source_filter(app):
    async with websockets.connect(app.ws("/ws/news")) as ws:
        await ws.send(json.dumps({"action": "filter", "keywords": [], "sources": ["wire b"]}))
        await recv_until(ws, _is("ack"))
        app.post_news(title="from a", source="Wire A")
        app.post_news(title="from b", source="Wire B")
        msg = await recv_until(ws, _is("news"))
    assert msg["data"]["title"] == "from b"


async def test_duplicate_news_url_is_not_published_twice_and_answers_the_original_seq(app):
    url = f"https://news.example/dup-{time.time_ns()}"
    first = app.post_news(url=url).json()
    assert first["duplicate"] is False
    again = app.post_news(url=url)
    assert again.status_code == 201 and again.json() == {"seq": first["seq"], "duplicate": True, "sentiment": None,
                                                          "sentiment_score": None}


async def test_resume_since_replays_missed_news_in_order(app):
    seqs = [app.post_news(title=f"resume {i}").json()["seq"] for i in range(3)]
    async with websockets.connect(app.ws(f"/ws/news?since={seqs[0]}")) as ws:
        got = [await recv_until(ws, _is("news")) for _ in range(2)]
    assert [m["seq"] for m in got] == seqs[1:]


async def test_resume_from_before_history_reports_gap_then_streams(app):
    async with websockets.connect(app.ws("/ws/news?since=0&epoch=gone")) as ws:
        gap = await recv_until(ws, _is("error"))
        app.post_news(title="after the gap")
        live = await recv_until(ws, _is("news"))
    assert gap["error"]["code"] == "HISTORY_GAP" and live["data"]["title"] == "after the gap"


async def test_resume_on_snapshot_topic_sends_newer_snapshot(app):
    async with websockets.connect(app.ws("/ws/sentiment?since=0")) as ws:
        msg = await recv_until(ws, _is("sentiment_update"))
    assert msg["seq"] > 0


async def test_rest_prices_and_history(app):
    prices = httpx.get(f"{app.http}/api/prices").json()
    assert prices["simulated"] is True and len(prices["prices"]) == 20
    assert httpx.get(f"{app.http}/api/history/NOPE").status_code == 404
    assert httpx.get(f"{app.http}/api/history/BTC,ETH").status_code == 404  # one symbol per path, not a list
    assert httpx.get(f"{app.http}/api/history/BTC?interval=1m&limit=5").status_code == 200


async def test_rest_prices_answer_only_the_symbols_asked_for(app):
    answer = httpx.get(f"{app.http}/api/prices", params={"symbols": "eth, BTC"})
    assert answer.status_code == 200
    assert sorted(quote["data"]["symbol"] for quote in answer.json()["prices"]) == ["BTC", "ETH"]


async def test_rest_prices_refuse_an_unknown_symbol_naming_the_tracked_ones(app):
    answer = httpx.get(f"{app.http}/api/prices", params={"symbols": "BTC,NOPE"})
    assert answer.status_code == 404
    detail = answer.json()["detail"]
    assert detail["code"] == "UNKNOWN_SYMBOL" and "'NOPE'" in detail["message"] and "BTC" in detail["message"]
    empty = httpx.get(f"{app.http}/api/prices", params={"symbols": " , "})
    assert empty.status_code == 422 and "?symbols=BTC,ETH" in empty.json()["detail"]["message"]


def test_server_log_file_is_written(app: AppProcess):
    assert (Path(app.data_dir) / "server.log").read_text()
