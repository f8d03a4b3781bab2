"""The runtime's producer tasks: sentiment rebuilt when an input changes, and crashes that are never silent."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from compose import compose
from core.clock import utc_now
from core.config import Settings
from core.records import FearGreedReading, NewsItem
from desk.runtime import Runtime
from testbed.harness import MS


def _settings(tmp_path: Path) -> Settings:
    # A sentiment cadence far longer than any test: every update seen here was caused by a change.
    return Settings(data_dir=tmp_path, symbols=("BTC",), data_mode="demo", log_file=None, enable_ui=False,
                    enable_sources=False, enable_inference=False, sentiment_interval_s=600.0)


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    rt = compose(_settings(tmp_path)).runtime
    await rt.start()
    await _wait_for(lambda: rt.bus.latest("sentiment") is not None)
    yield rt
    await rt.stop()


async def _wait_for(predicate: Any, timeout: float = 3000 * MS) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(10 * MS)


def _sentiment(rt: Runtime) -> dict[str, Any]:
    envelope = rt.bus.latest("sentiment")
    assert envelope is not None
    return json.loads(envelope.text)  # type: ignore[no-any-return]


def _news(url: str, score: float | None) -> NewsItem:
    return NewsItem(title="t", description="d", url=url, source="Wire", published_at=utc_now(),
                    sentiment=None if score is None else "positive", sentiment_score=score)


async def test_sentiment_is_republished_when_fear_greed_arrives(runtime: Runtime) -> None:
    assert _sentiment(runtime)["data"]["fear_greed"]["value"] is None
    runtime.sentiment.accept_fear_greed(FearGreedReading(value=71, classification="Greed", timestamp=utc_now()))
    await _wait_for(lambda: _sentiment(runtime)["data"]["fear_greed"]["value"] == 71)


async def test_sentiment_is_republished_when_scored_news_arrives(runtime: Runtime) -> None:
    await runtime.news.ingest([_news("https://n.example/1", 0.8)])
    await _wait_for(lambda: "news" in _sentiment(runtime)["data"]["market"]["inputs"])


async def test_a_burst_of_inputs_becomes_one_update(runtime: Runtime) -> None:
    before = runtime.bus.last_seq("sentiment")
    await runtime.news.ingest([_news(f"https://n.example/b{i}", 0.5) for i in range(20)])
    await _wait_for(lambda: runtime.bus.last_seq("sentiment") > before)
    await asyncio.sleep(500 * MS)
    assert runtime.bus.last_seq("sentiment") == before + 1


async def test_an_input_that_changes_nothing_publishes_nothing(runtime: Runtime) -> None:
    before = runtime.bus.last_seq("sentiment")
    await runtime.news.ingest([_news("https://n.example/unscored", None)])
    await asyncio.sleep(500 * MS)
    assert runtime.bus.last_seq("sentiment") == before


async def test_scored_news_of_a_previous_run_feed_the_mood_after_a_restart(tmp_path: Path) -> None:
    first = compose(_settings(tmp_path)).runtime
    await first.news.ingest([_news("https://n.example/kept", 0.9)])
    await first.stop()
    second = compose(_settings(tmp_path)).runtime
    try:
        assert list(second.news.recent_scores) == [0.9]
    finally:
        await second.stop()


async def test_a_crashed_producer_is_logged_by_name_and_stops_agent_running(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    async def crash() -> None:
        raise RuntimeError("producer bug")

    assert runtime.agent_running
    with caplog.at_level(logging.ERROR, logger="desk.runtime"):
        runtime._producers.spawn("doomed", crash())
        await _wait_for(lambda: not runtime.agent_running)
    assert "task runtime.doomed crashed" in caplog.text and "producer bug" in caplog.text
    assert not runtime.agent_running
