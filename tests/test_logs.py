"""Tokens never reach the log, at any level: query values and credential headers are masked (#9)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import websockets

from core.logs import RedactSecrets, redact_secrets
from tests.harness import recv_json, running_app

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
