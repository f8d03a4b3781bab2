"""Hostile client frames against a real app: every one gets a coded error, the socket stays open,
and a bystander on /ws/market_data keeps receiving BTC updates meanwhile."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator

import pytest
import websockets

from testbed.harness import MS, AppProcess, recv_json, recv_until, running_app

ENDPOINTS = ("/ws/market_data", "/ws/news", "/ws/sentiment", "/ws/huggingface", "/api/monitoring/ws")
CODED = {"INVALID_MESSAGE", "UNKNOWN_ACTION", "INVALID_SYMBOL", "MESSAGE_TOO_LARGE"}
PRICE_INTERVAL_S = 0.2

HOSTILE: dict[str, str | bytes] = {
    "deep array": "[" * 5000 + "]" * 5000,
    "deep object": '{"a":' * 5000 + "1" + "}" * 5000,
    "deep value": '{"action": "subscribe", "symbols": ' + "[" * 5000 + "]" * 5000 + "}",
    "float overflow": '{"type": "ping", "id": 1e99999}',
    "5,000-digit integer": '{"type": "ping", "id": ' + "9" * 5000 + "}",
    "100,000-digit integer": '{"type": "ping", "id": ' + "9" * 100_000 + "}",
    "NaN": '{"type": "ping", "id": NaN}',
    "Infinity": '{"action": "subscribe", "symbols": ["BTC"], "id": -Infinity}',
    "invalid UTF-8 binary": b"\xff\xfe\xfd\x00{",
    "binary garbage": bytes(range(256)),
    "BOM": '\ufeff{"type": "ping"}',
    "lone surrogate symbol": '{"action": "subscribe", "symbols": ["\\ud800"]}',
    "lone surrogate type": '{"type": "\\ud800"}',
    "lone surrogate id": '{"type": "ping", "id": "\\udc00"}',
    "symbols not a list": '{"action": "subscribe", "symbols": "BTC"}',
    "symbols of numbers": '{"action": "subscribe", "symbols": [1, 2]}',
    "empty symbols": '{"action": "subscribe", "symbols": []}',
    "action null": '{"action": null}',
    "action object": '{"action": {"a": 1}}',
    "unknown action": '{"action": "teleport"}',
    "unknown type": '{"type": "pong"}',
    "id object": '{"type": "ping", "id": {"a": 1}}',
    "id too long": json.dumps({"type": "ping", "id": "x" * 200}),
    "5,000 sources": json.dumps({"action": "filter", "sources": [f"s{i}" for i in range(5000)]}),
    "60 sources": json.dumps({"action": "filter", "sources": [f"s{i}" for i in range(60)]}),
    "60 keywords": json.dumps({"action": "filter", "keywords": [f"k{i}" for i in range(60)]}),
    "oversized": json.dumps({"action": "filter", "keywords": ["a" * 70_000]}),
    "empty": "",
    "null": "null",
    "array": "[]",
    "array of requests": '[{"type": "ping"}]',
    "number": "42",
    "string": '"ping"',
    "true": "true",
    "no action": '{"symbols": ["BTC"]}',
}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppProcess]:
    # A generous message budget: this test is about parsing, not rate limits.
    with running_app(tmp_path_factory.mktemp("hostile"), PRICE_INTERVAL_S=str(PRICE_INTERVAL_S),
                     MESSAGES_PER_SECOND="1000", MESSAGE_BURST="1000", MAX_SYMBOLS_PER_CONNECTION="3") as proc:
        yield proc


@pytest.fixture
async def bystander(app: AppProcess) -> AsyncIterator[list[float]]:
    """Arrival times of BTC updates on a separate /ws/market_data client, for the duration of a test."""
    arrivals: list[float] = []
    loop = asyncio.get_running_loop()

    async def watch() -> None:
        async with websockets.connect(app.ws("/ws/market_data?symbols=BTC")) as ws:
            while True:
                message = await recv_json(ws, 10_000 * MS)
                if message["type"] == "price_update" and message["data"]["symbol"] == "BTC":
                    arrivals.append(loop.time())

    task = asyncio.create_task(watch())
    while not arrivals:
        if task.done():
            task.result()  # the bystander could not even start: say why
        await asyncio.sleep(20 * MS)
    yield arrivals
    if task.done():
        task.result()  # the bystander's socket died during the test
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def _worst_gap_after_next_update(arrivals: list[float]) -> float:
    """Wait for one more bystander update (the stream outlived the frames); return the worst gap seen."""
    seen = len(arrivals)
    deadline = asyncio.get_running_loop().time() + 5000 * MS
    while len(arrivals) == seen and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(20 * MS)
    times = [*arrivals, asyncio.get_running_loop().time()]
    return max(b - a for a, b in zip(times, times[1:], strict=False))


async def _errors_before_pong(ws, frame: str | bytes) -> list[dict]:
    """Send `frame`, then a ping; return the errors that arrive before its pong."""
    await ws.send(frame)
    await ws.send(json.dumps({"type": "ping", "id": "after"}))
    errors = []
    while True:
        message = await recv_json(ws)
        if message["type"] == "pong" and message.get("id") == "after":
            return errors
        if message["type"] == "error":
            errors.append(message["error"])


@pytest.mark.parametrize("path", ENDPOINTS)
async def test_every_hostile_frame_gets_one_coded_error_and_the_socket_stays_open(app, bystander, path):
    answers = {}
    async with websockets.connect(app.ws(path), max_size=None) as ws:
        for name, frame in HOSTILE.items():
            answers[name] = [e["code"] for e in await _errors_before_pong(ws, frame)]
    wrong = {name: codes for name, codes in answers.items() if len(codes) != 1 or codes[0] not in CODED}
    assert wrong == {}
    assert await _worst_gap_after_next_update(bystander) < 10 * PRICE_INTERVAL_S
    assert "Traceback" not in app.log()


async def test_deep_nesting_is_reported_as_nested_too_deeply(app):
    async with websockets.connect(app.ws("/ws/news")) as ws:
        [error] = await _errors_before_pong(ws, HOSTILE["deep array"])
    assert error["code"] == "INVALID_MESSAGE" and "nested too deeply" in error["message"]


async def test_filter_past_max_sources_is_refused_and_cleared(app):
    async with websockets.connect(app.ws("/ws/news")) as ws:
        [error] = await _errors_before_pong(ws, HOSTILE["60 sources"])
    assert error["code"] == "INVALID_MESSAGE" and "Too many sources" in error["message"]
    assert "at most 50" in error["details"]


async def test_url_sources_past_max_sources_get_a_coded_error(app):
    sources = ",".join(f"s{i}" for i in range(60))
    async with websockets.connect(app.ws(f"/ws/news?sources={sources}")) as ws:
        error = await recv_until(ws, lambda m: m["type"] == "error")
        assert error["error"]["code"] == "INVALID_MESSAGE" and "sources" in error["error"]["message"]
        assert await _errors_before_pong(ws, '{"type": "ping"}') == []


async def test_symbols_query_past_the_limit_gets_invalid_symbol_not_1006(app):
    async with websockets.connect(app.ws("/ws/market_data?symbols=BTC,ETH,SOL,XRP")) as ws:
        error = await recv_until(ws, lambda m: m["type"] == "error")
        assert error["error"]["code"] == "INVALID_SYMBOL" and "at most 3" in error["error"]["details"]
        assert await _errors_before_pong(ws, '{"action": "subscribe", "symbols": ["BTC"]}') == []
