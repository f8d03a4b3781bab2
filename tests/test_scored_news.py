"""News scored by the real inference layer before it reaches /ws/news, and its statistics on /ws/huggingface."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest
import websockets

from inference.catalog import CATALOG
from testbed.harness import MS, AppProcess, recv_until, running_app

EMBEDDED = "embedded/minilm-finhead"


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppProcess]:
    models = f"{EMBEDDED},ProsusAI/finbert"
    with running_app(tmp_path_factory.mktemp("scored"), ENABLE_INFERENCE="1", MODELS=models) as proc:
        yield proc


def _embedded_available(m: dict) -> bool:
    return m["type"] == "models_status" and any(
        e["id"] == EMBEDDED and e["status"] == "available" for e in m["data"]["models"])


async def test_news_arrives_scored_by_the_embedded_model(app):
    async with websockets.connect(app.ws("/ws/huggingface")) as ws:
        await recv_until(ws, _embedded_available, timeout=120_000 * MS)
    async with websockets.connect(app.ws("/ws/news")) as ws:
        app.post_news(title="Bitcoin soars to a record high as ETF inflows surge", description="Buyers pile in.")
        msg = await recv_until(ws, lambda m: m["type"] == "news", timeout=30_000 * MS)
    data = msg["data"]
    assert data["sentiment"] == "positive" and 0 < data["sentiment_score"] <= 1
    assert data["sentiment_model"] and EMBEDDED in data["scored_by"]


async def test_missing_hub_model_is_failed_with_reason_and_calls_are_counted(app):
    httpx.post(f"{app.http}/api/sentiment", json={"texts": ["ETH dumps after exploit"], "model": EMBEDDED}, timeout=60)
    async with websockets.connect(app.ws("/ws/huggingface")) as ws:
        msg = await recv_until(ws, lambda m: _embedded_available(m) and any(
            e["id"] == EMBEDDED and e["success_rate"] is not None for e in m["data"]["models"]), timeout=30_000 * MS)
    models = {e["id"]: e for e in msg["data"]["models"]}
    assert models["ProsusAI/finbert"]["status"] == "failed" and models["ProsusAI/finbert"]["error"]
    embedded = models[EMBEDDED]
    assert embedded["success_rate"] == 100.0 and embedded["avg_response_time"] > 0 and embedded["last_used"]
    assert msg["data"]["failed"] >= 1 and msg["data"]["available"] >= 2  # the embedded model and the lexicon
    async with websockets.connect(app.ws("/api/monitoring/ws")) as ws:
        status = await recv_until(ws, lambda m: m["type"] == "system_status" and m["ai_models"]["available"] >= 2)
    ai = status["ai_models"]
    assert status["stats"]["total_models"] == ai["total"] == len(CATALOG)  # every catalog model is listed
    assert ai["total"] == ai["available"] + ai["loading"] + ai["failed"] + ai["skipped"]


def test_rest_sentiment_limits(app):
    too_many = httpx.post(f"{app.http}/api/sentiment", json={"texts": ["a"] * 257}, timeout=30)
    too_long = httpx.post(f"{app.http}/api/sentiment", json={"texts": ["a" * 20_001]}, timeout=30)
    unknown = httpx.post(f"{app.http}/api/sentiment", json={"texts": ["a"], "model": "nobody/nothing"}, timeout=30)
    assert (too_many.status_code, too_long.status_code) == (413, 413)
    assert unknown.status_code == 404 and "nobody/nothing" in unknown.text


async def test_long_text_is_scored_on_its_window_and_flagged(app):
    async with websockets.connect(app.ws("/ws/huggingface")) as ws:
        await recv_until(ws, _embedded_available, timeout=120_000 * MS)
    long_text = "Bitcoin soars to a record high as inflows surge. " * 45  # 2,205 characters
    body = httpx.post(f"{app.http}/api/sentiment", json={"texts": [long_text, "ETH dumps"], "model": EMBEDDED},
                      timeout=60).json()
    assert [r["truncated"] for r in body["results"]] == [True, False]
    assert body["results"][0]["model"] == EMBEDDED and body["results"][0]["label"] == "bullish"


async def test_ready_names_models_once_settled(app):
    deadline = time.monotonic() + 120_000 * MS
    ready = httpx.get(f"{app.http}/ready", timeout=10)
    while ready.status_code == 503 and time.monotonic() < deadline:
        assert ready.json()["loading"]  # 503 always names what it waits for
        await asyncio.sleep(0.2)
        ready = httpx.get(f"{app.http}/ready", timeout=10)
    assert ready.status_code == 200 and ready.json()["loading"] == []
    assert EMBEDDED in ready.json()["available"] and "ProsusAI/finbert" in ready.json()["failed"]
