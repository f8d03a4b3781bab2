"""The Binance mini-ticker WebSocket client against a local WebSocket server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from core.records import PriceQuote
from sources import BinanceStream, ProviderState, SourcePool
from tests.upstream import FIXTURES, UpstreamStream, closed_url, upstream_stream

__all__ = ["upstream_stream"]

TICK = 0.05
MINI_TICKER = (FIXTURES / "binance_mini_ticker.json").read_text()


@pytest.fixture
async def state() -> AsyncIterator[ProviderState]:
    async with httpx.AsyncClient() as client:
        pool: SourcePool[PriceQuote] = SourcePool("market_data", [], client=client, failure_threshold=3)
        yield pool.add_external("binance_ws", priority=1, stale_after_s=30.0)


async def run_until(
    stream: BinanceStream,
    state: ProviderState,
    done: Callable[[list[PriceQuote]], bool],
    limit_s: float = 5.0,
) -> list[PriceQuote]:
    received: list[PriceQuote] = []
    finished = asyncio.Event()

    async def on_quotes(quotes: list[PriceQuote]) -> None:
        received.extend(quotes)
        if done(received):
            finished.set()

    task = asyncio.create_task(stream.run(on_quotes, state))
    try:
        await asyncio.wait_for(finished.wait(), limit_s)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return received


def make_stream(url: str) -> BinanceStream:
    return BinanceStream(url=url, base_backoff_s=TICK, max_backoff_s=4 * TICK, idle_timeout_s=1.0)


async def test_stream_delivers_tracked_quotes(upstream_stream: UpstreamStream, state: ProviderState) -> None:
    upstream_stream.serve([MINI_TICKER], interval_s=TICK, repeat=True)
    quotes = await run_until(make_stream(upstream_stream.url), state, lambda got: len(got) >= 4)
    assert {q.symbol for q in quotes} == {"BTC", "ETH"} and quotes[0].source == "binance"
    assert state.successes >= 2 and state.health(state.last_success_at or 0.0).status == "active"


async def test_stream_reconnects_after_server_closes(
    upstream_stream: UpstreamStream, state: ProviderState
) -> None:
    upstream_stream.serve([MINI_TICKER], interval_s=TICK, then="close")
    await run_until(make_stream(upstream_stream.url), state, lambda got: len(got) >= 6)
    assert upstream_stream.connections >= 3 and state.failures >= 2


async def test_stream_garbage_frames_counted_then_connection_dropped(
    upstream_stream: UpstreamStream, state: ProviderState
) -> None:
    upstream_stream.serve(["<html>oops</html>", "{not json", "[1, 2]"], interval_s=TICK, repeat=True)
    stream = make_stream(upstream_stream.url)
    task = asyncio.create_task(stream.run(_ignore, state))
    await asyncio.sleep(20 * TICK)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert state.successes == 0 and state.failures >= 3 and state.last_error is not None
    assert upstream_stream.connections >= 1 and state.breaker.consecutive_failures >= 3


async def test_stream_refused_counts_failures_and_backs_off(state: ProviderState) -> None:
    stream = make_stream(closed_url().replace("http://", "ws://") + "/ws")
    task = asyncio.create_task(stream.run(_ignore, state))
    await asyncio.sleep(10 * TICK)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert 2 <= state.failures <= 8 and not stream.connected
    assert state.last_error is not None and state.last_error.startswith("ConnectionRefusedError")


async def test_stream_callback_error_does_not_kill_stream(
    upstream_stream: UpstreamStream, state: ProviderState
) -> None:
    upstream_stream.serve([MINI_TICKER], interval_s=TICK, repeat=True)
    calls = 0

    async def flaky(quotes: list[PriceQuote]) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("consumer bug")

    task = asyncio.create_task(make_stream(upstream_stream.url).run(flaky, state))
    await asyncio.sleep(10 * TICK)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert calls >= 3 and upstream_stream.connections == 1


async def _ignore(quotes: list[PriceQuote]) -> None:
    return None
