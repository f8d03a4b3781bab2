"""Every error code and limit against a real app: the connection stays open and others are unaffected."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator

import httpx
import pytest
import websockets

from testbed.harness import MS, AppProcess, recv_json, recv_until, running_app


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppProcess]:
    with running_app(tmp_path_factory.mktemp("errors"), MESSAGES_PER_SECOND="5", MESSAGE_BURST="10",
                     OUTBOX_SIZE="16") as proc:
        yield proc


async def _error_for(ws, frame: str | bytes) -> dict:
    await ws.send(frame)
    return await recv_until(ws, lambda m: m["type"] == "error")


async def _error_codes_until_quiet(ws) -> list[str]:
    """The error codes the server sends until it has been quiet for 300 ms (40 frames at most)."""
    codes = []
    for _ in range(40):
        try:
            msg = await recv_json(ws, 300 * MS)
        except TimeoutError:
            break
        if msg["type"] == "error":
            codes.append(msg["error"]["code"])
    return codes


async def _still_open(ws) -> bool:
    await ws.send(json.dumps({"type": "ping"}))
    return (await recv_until(ws, lambda m: m["type"] == "pong"))["type"] == "pong"


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{not json", "INVALID_MESSAGE"),
        ('{"action": "subscribe", "symbols": "BTC"}', "INVALID_MESSAGE"),
        ('{"action": "teleport"}', "UNKNOWN_ACTION"),
        ('{"action": "filter", "keywords": ["x"]}', "UNKNOWN_ACTION"),  # filter belongs to /ws/news
        ('{"action": "subscribe", "symbols": ["NOTACOIN"]}', "INVALID_SYMBOL"),
    ],
)
async def test_bad_message_gets_error_and_connection_stays_open(app, frame, code):
    async with websockets.connect(app.ws("/ws/market_data")) as ws:
        err = await _error_for(ws, frame)
        assert err["error"]["code"] == code and err["error"]["message"] and err["timestamp"].endswith("Z")
        assert await _still_open(ws)


async def test_oversized_frame_gets_message_too_large(app):
    async with websockets.connect(app.ws("/ws/news"), max_size=None) as ws:
        err = await _error_for(ws, json.dumps({"action": "filter", "keywords": ["a" * 70_000]}))
        assert err["error"]["code"] == "MESSAGE_TOO_LARGE" and "65536" in err["error"]["details"]
        assert await _still_open(ws)


async def test_huge_frame_is_closed_with_1009(app):
    async with websockets.connect(app.ws("/ws/news"), max_size=None) as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.send("x" * (2 * 1024 * 1024))  # the close may already interrupt the send
            await recv_json(ws, 3000 * MS)
    assert closed.value.rcvd.code == 1009


async def test_flood_gets_rate_limited_once_and_stays_open(app):
    async with websockets.connect(app.ws("/ws/sentiment")) as ws:
        for _ in range(20):
            await ws.send(json.dumps({"type": "ping"}))
        codes = await _error_codes_until_quiet(ws)
        assert codes == ["RATE_LIMITED"]
        await asyncio.sleep(1200 * MS)  # the bucket refills at 5/s
        assert await _still_open(ws)


async def test_flood_after_another_refusal_still_gets_rate_limited(app):
    async with websockets.connect(app.ws("/ws/sentiment")) as ws:
        for _ in range(20):  # the burst's 10 are refused as invalid first; the rest must still be told
            await ws.send("{not json")
        codes = await _error_codes_until_quiet(ws)
        assert codes[-1] == "RATE_LIMITED" and set(codes[:-1]) == {"INVALID_MESSAGE"}


async def test_abusive_flood_is_closed_with_1008(app):
    async with websockets.connect(app.ws("/ws/sentiment")) as ws:
        for _ in range(200):
            await ws.send("garbage")
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                await recv_json(ws, 3000 * MS)
    assert closed.value.rcvd.code == 1008


async def test_invalid_since_is_reported(app):
    async with websockets.connect(app.ws("/ws/news?since=abc")) as ws:
        err = await recv_until(ws, lambda m: m["type"] == "error")
    assert err["error"]["code"] == "INVALID_MESSAGE"


def _stalled_socket(app: AppProcess, path: str, first_frame: bytes | None = None) -> socket.socket:
    """Open a WebSocket by hand, send one masked frame, and then never read again."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect, so the window stays small
    sock.connect(("127.0.0.1", app.port))
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    sock.recv(1024)  # the 101 response
    return sock


async def test_stalled_news_client_gets_slow_consumer_and_others_are_not_delayed(app):
    stalled = _stalled_socket(app, "/ws/news")
    received: list[int] = []

    async def read_all(ws):
        while True:
            msg = await recv_json(ws, 10_000 * MS)
            if msg["type"] == "news":
                received.append(msg["seq"])

    published: list[int] = []
    headers = {"Authorization": f"Bearer {app.env['ADMIN_TOKEN']}"}
    try:
        async with websockets.connect(app.ws("/ws/news")) as healthy, httpx.AsyncClient(headers=headers) as http:
            reader = asyncio.create_task(read_all(healthy))
            body = "x" * 4_900
            for batch in range(375):  # up to 3,000 items of 5 KB: more than any socket buffer holds
                replies = await asyncio.gather(*(
                    http.post(f"{app.http}/api/news", json={"title": f"flood {batch}-{i}", "description": body,
                                                          "source": "Flood", "url": f"https://f.example/{batch}/{i}"})
                    for i in range(8)))  # fewer at once than OUTBOX_SIZE: the healthy reader is never behind
                published += [r.json()["seq"] for r in replies]
                if "slow consumer" in app.log():
                    break
            await asyncio.sleep(500 * MS)
            reader.cancel()
    finally:
        stalled.close()
    assert "slow consumer" in app.log()
    assert received == sorted(published)  # the healthy reader lost nothing and kept order


async def test_resume_far_behind_replays_everything_past_the_outbox_bound(app):
    """A client more than OUTBOX_SIZE items behind still catches up instead of being closed forever."""
    seqs = [app.post_news(title=f"backlog {i}").json()["seq"] for i in range(40)]
    async with websockets.connect(app.ws(f"/ws/news?since={seqs[0]}")) as ws:
        got = [(await recv_until(ws, lambda m: m["type"] in ("news", "error")))for _ in range(39)]
    assert [m.get("seq") for m in got] == seqs[1:]


async def test_resume_applies_url_keywords_before_replay(app):
    first = app.post_news(title="marker").json()["seq"]
    app.post_news(title="nothing here")
    app.post_news(title="Solana upgrade")
    async with websockets.connect(app.ws(f"/ws/news?since={first}&keywords=solana")) as ws:
        msg = await recv_until(ws, lambda m: m["type"] == "news")
    assert msg["data"]["title"] == "Solana upgrade"
