"""Tokens never reach the log, at any level: query values and credential headers are masked."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
import websockets

from core.log_context import Served
from core.logs import JsonFormatter, RedactSecrets, TextFormatter, redact_secrets, utc_timestamp
from testbed.harness import MS, AppProcess, recv_json, running_app

TOKENS = {"header": "hdr-secret-111", "subprotocol": "proto-secret-222", "query": "query-secret-333"}


@pytest.mark.parametrize(
    ("line", "masked"),
    [
        ("< authorization: Bearer hdr-secret-111", "< authorization: ***"),
        ("> Sec-WebSocket-Protocol: token.proto-secret-222", "> Sec-WebSocket-Protocol: ***"),
        ("< sec-websocket-protocol: proto-secret-222, chat", "< sec-websocket-protocol: ***"),
        ("GET /ws/news?token=query-secret-333&since=4", "GET /ws/news?token=***&since=4"),
        ("[(b'authorization', b'Bearer x')]", "[(b'authorization', b'***')]"),
        ("authorization failed for 1.2.3.4", "authorization failed for 1.2.3.4"),
    ],
)
def test_redact_secrets_masks_tokens_and_keeps_the_rest(line: str, masked: str) -> None:
    assert redact_secrets(line) == masked


def test_debug_records_with_args_are_redacted() -> None:
    record = logging.LogRecord("uvicorn.error", logging.DEBUG, __file__, 1, "< %s: %s",
                               ("authorization", "Bearer hdr-secret-111"), None)
    RedactSecrets().filter(record)
    assert record.getMessage() == "< authorization: ***"


async def test_tokens_offered_three_ways_never_reach_the_debug_log(tmp_path: Path) -> None:
    with running_app(tmp_path, LOG_LEVEL="DEBUG", API_TOKENS=",".join(TOKENS.values())) as app:
        for how, options in (("header", {"additional_headers": {"Authorization": f"Bearer {TOKENS['header']}"}}),
                             ("subprotocol", {"subprotocols": [f"token.{TOKENS['subprotocol']}"]}),
                             ("query", {})):
            url = app.ws("/ws/sentiment" + (f"?token={TOKENS['query']}" if how == "query" else ""))
            async with websockets.connect(url, **options) as ws:
                assert (await recv_json(ws))["type"] == "sentiment_update"
    logged = app.log() + (tmp_path / "server.log").read_text()
    assert "authorization: ***" in logged.lower()  # the handshake headers were logged, masked
    assert [token for token in TOKENS.values() if token in logged] == []


# ------------------------------------------------------------------ JSON lines people can search


def test_utc_timestamp_is_iso_8601_with_milliseconds_and_z():
    assert utc_timestamp(1_796_641_323.1239) == "2026-12-07T11:02:03.123Z"


def test_json_exception_keeps_its_traceback_in_one_field():
    try:
        raise ValueError("bad frame")
    except ValueError:
        record = logging.LogRecord("ws.session", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    line = JsonFormatter().format(record)
    assert "\n" not in line
    assert json.loads(line)["exc"].splitlines()[-1] == "ValueError: bad frame"


def test_text_lines_name_the_connection_passed_in_extra():
    served = Served("connection", "abc123", "/ws/news", "203.0.113.9")
    record = logging.LogRecord("ws.session", logging.INFO, __file__, 1, "ws open %s", ("/ws/news",), None)
    record.__dict__.update(served.fields())
    assert TextFormatter().format(record).endswith("ws open /ws/news [connection=abc123 /ws/news 203.0.113.9]")


def _json_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


def _wait_for_line(path: Path, predicate) -> dict:
    deadline = time.monotonic() + 10_000 * MS
    while time.monotonic() < deadline:
        found = [line for line in _json_lines(path) if predicate(line)]
        if found:
            return found[0]
        time.sleep(50 * MS)
    raise AssertionError(f"no such line in {path}:\n{path.read_text()[-4000:]}")


@pytest.fixture(scope="module")
def json_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppProcess]:
    with running_app(tmp_path_factory.mktemp("json-logs"), LOG_JSON="1") as app:
        yield app


async def test_websocket_open_and_close_lines_share_the_connection_and_resolved_client(json_app):
    headers = {"X-Forwarded-For": "203.0.113.9"}  # from loopback, a trusted proxy: the client it names
    async with websockets.connect(json_app.ws("/ws/sentiment"), additional_headers=headers) as ws:
        assert (await recv_json(ws))["type"] == "sentiment_update"
        await asyncio.sleep(200 * MS)
        await ws.close(code=4001, reason="done")
    log = json_app.data_dir / "server.log"
    closed = _wait_for_line(log, lambda line: line["message"].startswith("ws close /ws/sentiment")
                            and line.get("client") == "203.0.113.9")
    opened = _wait_for_line(log, lambda line: line.get("connection_id") == closed["connection_id"]
                            and line["message"].startswith("ws open"))
    for line in (opened, closed):
        assert datetime.fromisoformat(line["time"]).utcoffset() == timedelta(0) and line["time"].endswith("Z")
        assert (line["path"], line["client"], line["level"], line["logger"]) == (
            "/ws/sentiment", "203.0.113.9", "INFO", "ws.session")
    assert (closed["close_code"], closed["closed_by"]) == (4001, "client")
    assert 200 * MS - 0.001 <= closed["duration_s"] < 10


def test_lines_logged_during_a_request_carry_its_id_and_path(json_app):
    response = httpx.get(f"{json_app.http}/api/no-such-route", timeout=10)
    assert response.status_code == 404
    request_id = response.headers["X-Request-ID"]
    line = _wait_for_line(json_app.data_dir / "server.log", lambda line: line.get("request_id") == request_id)
    assert (line["path"], line["client"], line["logger"]) == ("/api/no-such-route", "127.0.0.1", "uvicorn.access")
    assert "404" in line["message"]
