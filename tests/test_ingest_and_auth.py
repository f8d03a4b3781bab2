"""Ingestion auth, WebSocket API tokens and SIGTERM shutdown, each against its own real app."""

from __future__ import annotations

import asyncio
import json
import signal

import httpx
import pytest
import websockets

from testbed.harness import MS, recv_json, recv_until, running_app


def test_admin_routes_without_admin_token_configured_are_403_naming_what_is_off(tmp_path):
    with running_app(tmp_path, ADMIN_TOKEN="") as app:
        r = httpx.post(f"{app.http}/api/news", json={"title": "t", "url": "https://a.example/1", "source": "s"})
        model = httpx.post(f"{app.http}/api/models/lexicon/load")
    assert r.status_code == 403 and r.json()["detail"]["code"] == "ADMIN_DISABLED"
    assert r.json()["detail"]["message"].startswith("News ingestion is disabled: set ADMIN_TOKEN")
    assert model.status_code == 403 and model.json()["detail"]["code"] == "ADMIN_DISABLED"
    assert model.json()["detail"]["message"].startswith("Model administration is disabled: set ADMIN_TOKEN")


def test_ingest_with_wrong_token_is_401_and_right_token_201(app_server):
    body = {"title": "t", "url": "https://a.example/2", "source": "s"}
    wrong = httpx.post(f"{app_server.http}/api/news", json=body, headers={"Authorization": "Bearer nope"})
    missing = httpx.post(f"{app_server.http}/api/news", json=body)
    right = app_server.post_news(url="https://a.example/3")
    assert (wrong.status_code, missing.status_code, right.status_code) == (401, 401, 201)
    assert isinstance(right.json()["seq"], int)


def test_ingest_rejects_bad_body_with_422(app_server):
    r = app_server.post_news(url="not a url")
    assert r.status_code == 422 and "url" in r.text


async def test_api_tokens_refuse_missing_token_with_auth_error_and_1008(tmp_path):
    with running_app(tmp_path, API_TOKENS="alpha,beta") as app:
        async with websockets.connect(app.ws("/ws/sentiment")) as ws:
            err = await recv_json(ws)
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await recv_json(ws)
        async with websockets.connect(app.ws("/ws/sentiment?token=beta")) as ws:
            ok = await recv_until(ws, lambda m: m["type"] == "sentiment_update")
        async with websockets.connect(app.ws("/ws/sentiment"),
                                      additional_headers={"Authorization": "Bearer alpha"}) as ws:
            ok_header = await recv_until(ws, lambda m: m["type"] == "sentiment_update")
        async with websockets.connect(app.ws("/ws/sentiment"), subprotocols=["token.alpha"]) as ws:
            ok_proto = await recv_until(ws, lambda m: m["type"] == "sentiment_update")
            assert ws.subprotocol == "token.alpha"
        log = app.log()
    assert err["error"]["code"] == "AUTH_ERROR" and closed.value.rcvd.code == 1008
    assert ok["type"] == ok_header["type"] == ok_proto["type"] == "sentiment_update"
    assert "alpha" not in log and "beta" not in log


async def test_sigterm_closes_sockets_with_1001_and_exits_cleanly(tmp_path):
    with running_app(tmp_path) as app:
        async with websockets.connect(app.ws("/ws/market_data")) as ws:
            await ws.send(json.dumps({"action": "subscribe", "symbols": ["BTC"]}))
            await recv_until(ws, lambda m: m["type"] == "price_update")
            app.proc.send_signal(signal.SIGTERM)
            with pytest.raises(websockets.ConnectionClosed) as closed:
                while True:
                    await recv_json(ws, 10_000 * MS)
        code = await asyncio.to_thread(app.proc.wait, 20)
    assert closed.value.rcvd.code == 1001
    # uvicorn re-raises the captured SIGTERM after its graceful shutdown, so -15 is a clean exit too.
    assert code in (0, -signal.SIGTERM)
    assert "runtime: stopped" in app.log() and "Finished server process" in app.log()
