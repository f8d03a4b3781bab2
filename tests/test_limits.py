"""Connection limits, symbols per connection, origins, idle timeout and protocol pings, on a real app.

Each test speaks from its own forwarded address (the app trusts 127.0.0.1 as a proxy by default),
so the per-address limit of one test never counts another test's sockets.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator

import pytest
import websockets

from testbed.harness import MS, AppProcess, recv_json, recv_until, running_app
from testbed.services import metric, wait_for

IDLE_S = 1.5


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppProcess]:
    with running_app(
        tmp_path_factory.mktemp("limits"),
        MAX_CONNECTIONS_PER_IP="2",
        MAX_SYMBOLS_PER_CONNECTION="3",
        IDLE_TIMEOUT_S=str(IDLE_S),
        WS_PING_INTERVAL_S="0.5",
        ALLOWED_ORIGINS="https://good.example",
    ) as proc:
        yield proc


def _from(address: str) -> dict[str, dict[str, str]]:
    return {"additional_headers": {"X-Forwarded-For": address}}


async def _refusal(ws) -> tuple[dict, int]:
    error = await recv_json(ws)
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await recv_json(ws)
    return error, closed.value.rcvd.code


async def test_connections_over_the_per_address_limit_are_refused_with_1013(app):
    async with (
        websockets.connect(app.ws("/ws/news"), **_from("198.51.100.1")),
        websockets.connect(app.ws("/ws/news"), **_from("198.51.100.1")),
    ):
        async with websockets.connect(app.ws("/ws/news"), **_from("198.51.100.1")) as third:
            error, code = await _refusal(third)
        async with websockets.connect(app.ws("/ws/sentiment"), **_from("198.51.100.2")) as other_client:
            other = await recv_until(other_client, lambda m: m["type"] == "sentiment_update")
    assert error["error"]["code"] == "TOO_MANY_CONNECTIONS" and code == 1013
    assert "limit 2" in error["error"]["details"]
    assert other["type"] == "sentiment_update"  # a different client behind the same proxy is not affected


async def test_symbols_past_the_per_connection_limit_are_refused_and_the_rest_kept(app):
    async with websockets.connect(app.ws("/ws/market_data"), **_from("198.51.100.3")) as ws:
        await ws.send(json.dumps({"action": "subscribe", "symbols": ["BTC", "ETH"]}))
        await recv_until(ws, lambda m: m["type"] == "ack")
        await ws.send(json.dumps({"action": "subscribe", "symbols": ["SOL", "XRP"]}))
        error = await recv_until(ws, lambda m: m["type"] == "error")
        await ws.send(json.dumps({"action": "subscribe", "symbols": ["SOL"]}))
        ack = await recv_until(ws, lambda m: m["type"] == "ack")
    assert error["error"]["code"] == "INVALID_SYMBOL" and "at most 3" in error["error"]["details"]
    assert ack["data"]["symbols"] == ["BTC", "ETH", "SOL"]


@pytest.mark.parametrize(
    ("origin", "allowed"), [("https://good.example", True), ("https://evil.example", False)]
)
async def test_allowed_origins_refuse_other_browser_origins_with_auth_error(app, origin, allowed):
    async with websockets.connect(app.ws("/ws/sentiment"), origin=origin, **_from("198.51.100.4")) as ws:
        if allowed:
            first = await recv_until(ws, lambda m: m["type"] == "sentiment_update")
        else:
            first, code = await _refusal(ws)
    if allowed:
        assert first["type"] == "sentiment_update"
    else:
        assert first["error"]["code"] == "AUTH_ERROR" and "evil.example" in first["error"]["message"]
        assert code == 1008


async def test_clients_without_an_origin_header_are_not_browsers_and_are_served(app):
    async with websockets.connect(app.ws("/ws/sentiment"), **_from("198.51.100.5")) as ws:
        assert (await recv_until(ws, lambda m: m["type"] == "sentiment_update"))["type"] == "sentiment_update"


async def test_idle_connection_is_closed_and_a_busy_one_is_kept(app):
    async with (
        websockets.connect(app.ws("/ws/market_data"), **_from("198.51.100.6")) as idle,
        websockets.connect(app.ws("/api/monitoring/ws"), **_from("198.51.100.6")) as busy,
    ):
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                await recv_json(idle, 4 * IDLE_S)
        await recv_until(busy, lambda m: m["type"] == "system_status")  # status every 0.5 s: never idle
        assert busy.state is websockets.State.OPEN
    assert closed.value.rcvd.code == 1000 and "idle" in closed.value.rcvd.reason
    assert (metric(app, "hub_ws_idle_closes_total") or 0) >= 1


async def test_a_client_that_pings_is_never_idle(app):
    async with websockets.connect(app.ws("/ws/market_data"), **_from("198.51.100.7")) as ws:
        for _ in range(4):
            await asyncio.sleep(IDLE_S / 2)
            await ws.send(json.dumps({"type": "ping"}))
            await recv_until(ws, lambda m: m["type"] == "pong")
        assert ws.state is websockets.State.OPEN


def test_half_open_socket_is_dropped_by_protocol_pings(app):
    """A peer that vanished without a FIN never answers pings; the server drops it after ping + timeout."""
    sock = socket.create_connection(("127.0.0.1", app.port))
    sock.sendall(
        b"GET /ws/news HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"X-Forwarded-For: 198.51.100.8\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    try:
        assert sock.recv(1024).startswith(b"HTTP/1.1 101")
        wait_for(lambda: metric(app, "hub_ws_connections", 'endpoint="/ws/news"') == 1.0, 5)
        # Never read or answer again: the 0.5 s ping goes unanswered for its 0.5 s timeout.
        wait_for(lambda: metric(app, "hub_ws_connections", 'endpoint="/ws/news"') == 0.0, 3000 * MS * 2)
    finally:
        sock.close()


@pytest.fixture(scope="module")
def strict_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppProcess]:
    with running_app(
        tmp_path_factory.mktemp("strict"),
        MAX_CONNECTIONS="3",
        MAX_CONNECTIONS_PER_IP="100",
        TRUSTED_PROXIES="10.9.9.9",
    ) as proc:
        yield proc


async def test_connections_over_the_total_limit_are_refused(strict_app):
    opened = [await websockets.connect(strict_app.ws("/ws/news")) for _ in range(3)]
    try:
        async with websockets.connect(strict_app.ws("/ws/news")) as fourth:
            error, code = await _refusal(fourth)
    finally:
        for ws in opened:
            await ws.close()
    assert error["error"]["code"] == "TOO_MANY_CONNECTIONS" and code == 1013
    assert "limit 3" in error["error"]["details"]


async def test_forwarded_address_from_an_untrusted_peer_is_ignored(tmp_path):
    with running_app(tmp_path, MAX_CONNECTIONS_PER_IP="1", TRUSTED_PROXIES="10.9.9.9") as app:
        async with websockets.connect(app.ws("/ws/news"), **_from("203.0.113.1")):
            async with websockets.connect(app.ws("/ws/news"), **_from("203.0.113.2")) as second:
                error, code = await _refusal(second)
    assert error["error"]["code"] == "TOO_MANY_CONNECTIONS" and code == 1013  # both count as 127.0.0.1
