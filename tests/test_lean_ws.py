"""bench/lean_ws.py, the load generators' client, against the real app: frames, pings, closing."""

from __future__ import annotations

import asyncio
import json

import pytest

from bench.lean_ws import HandshakeFailed, LeanSocket
from core.endpoints import MARKET_PATH, NEWS_PATH
from testbed.harness import running_app


async def test_lean_socket_reads_news_answers_pings_and_closes_cleanly(tmp_path):
    with running_app(tmp_path, WS_PING_INTERVAL_S="0.5") as app:
        texts: list[dict] = []
        news = await LeanSocket.connect(app.ws(NEWS_PATH), lambda raw: texts.append(json.loads(raw)))
        market = await LeanSocket.connect(app.ws(MARKET_PATH), lambda raw: texts.append(json.loads(raw)))
        market.send(json.dumps({"action": "subscribe", "symbols": ["BTC"]}))
        await asyncio.to_thread(app.post_news, title="lean " + "x" * 300)  # a frame over 125 bytes
        async with asyncio.timeout(30):
            while not {"news", "price_update"} <= {m["type"] for m in texts}:
                await asyncio.sleep(0.05)
        await asyncio.sleep(2.0)  # four server pings: unanswered, they would close the sockets
        assert not news.closed.done() and not market.closed.done()
        await news.close()
        await market.close()
    assert (news.close_code, news.close_received) == (1000, True)
    assert [m["data"]["title"] for m in texts if m["type"] == "news"] == ["lean " + "x" * 300]


async def test_lean_socket_refused_upgrade_raises(tmp_path):
    with running_app(tmp_path) as app:
        with pytest.raises(HandshakeFailed):
            await LeanSocket.connect(app.ws("/ws/no-such-endpoint"), lambda raw: None, timeout=10)
