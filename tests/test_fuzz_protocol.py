"""Property tests of protocol handling: random client frames against real sessions of a real app.

Properties: whatever a client sends, the connection stays open (unless it crosses the documented
abuse rule), every refusal is an `error` with a documented code, every answer is a documented
message type, and `subscribe`/`unsubscribe` acks always match a model of the subscription set.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from core.protocol import ErrorCode
from testbed.harness import MS, AppProcess, running_app
from ws.routes import ENDPOINTS
from ws.session import ABUSE_LIMIT

SYMBOLS = ("BTC", "ETH", "SOL", "XRP", "ADA")
MAX_SYMBOLS = 3
SERVER_TYPES = {
    "ack",
    "pong",
    "error",
    "price_update",
    "news",
    "system_status",
    "sentiment_update",
    "models_status",
}
DOCUMENTED_CODES = {code.value for code in ErrorCode}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppProcess]:
    # Quiet cadences: only answers to our frames (and snapshots) travel. A high rate limit keeps the
    # barrier pings from being refused; rate limiting has its own tests in test_errors.py.
    with running_app(
        tmp_path_factory.mktemp("fuzz"),
        SYMBOLS=",".join(SYMBOLS),
        LOG_LEVEL="WARNING",
        MAX_SYMBOLS_PER_CONNECTION=str(MAX_SYMBOLS),
        MESSAGES_PER_SECOND="100000",
        MESSAGE_BURST="100000",
        PRICE_INTERVAL_S="3600",
        STATUS_INTERVAL_S="3600",
        MODELS_INTERVAL_S="3600",
        SENTIMENT_INTERVAL_S="3600",
    ) as app:
        yield app


symbol = st.one_of(
    st.sampled_from(SYMBOLS),
    st.sampled_from([s.lower() for s in SYMBOLS]),
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ ", min_size=1, max_size=15),
)
json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
    max_leaves=8,
)
valid_frame = st.one_of(
    st.builds(lambda s: {"action": "subscribe", "symbols": s}, st.lists(symbol, min_size=1, max_size=4)),
    st.builds(lambda s: {"action": "unsubscribe", "symbols": s}, st.lists(symbol, min_size=1, max_size=4)),
    st.just({"action": "get_all"}),
    st.builds(lambda k: {"action": "filter", "keywords": k}, st.lists(st.text(max_size=10), max_size=4)),
    st.builds(lambda i: {"type": "ping", "id": i}, st.one_of(st.none(), st.integers(), st.text(max_size=8))),
)
frame = st.one_of(
    valid_frame.map(json.dumps),
    st.dictionaries(
        st.sampled_from(["action", "type", "symbols", "keywords", "id"]), json_value, max_size=3
    ).map(json.dumps),
    json_value.map(json.dumps),
    st.text(max_size=60),
    st.binary(max_size=60),
)


def _receive(ws: Any) -> dict[str, Any]:
    return json.loads(ws.recv(timeout=5000 * MS))  # type: ignore[no-any-return]


def _answers_until_barrier(ws: Any, barrier: str) -> list[dict[str, Any]]:
    """Send a ping with a unique id and return everything that arrived before its pong."""
    ws.send(json.dumps({"type": "ping", "id": barrier}))
    answers = []
    while True:
        message = _receive(ws)
        if message["type"] == "pong" and message.get("id") == barrier:
            return answers
        answers.append(message)


def _expected_symbols(current: set[str], raw: str | bytes) -> set[str]:
    """The subscription set the server should hold after `raw` (a model of ws/session.py)."""
    try:
        request = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return current
    if not isinstance(request, dict) or not isinstance(request.get("symbols"), list):
        return current
    symbols = request["symbols"]
    if not symbols or not all(isinstance(s, str) and 1 <= len(s) <= 15 for s in symbols):
        return current
    if request.get("action") == "subscribe":
        known = {s.strip().upper() for s in symbols} & set(SYMBOLS)
        return current if len(current | known) > MAX_SYMBOLS else current | known
    if request.get("action") == "unsubscribe":
        return current - {s.upper() for s in symbols}
    return current


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from([spec.path for spec in ENDPOINTS]), frames=st.lists(frame, max_size=12))
def test_any_frames_get_documented_answers_and_never_close_the_connection(client, path, frames):
    with connect(client.ws(path)) as ws:
        for i, raw in enumerate(frames):
            ws.send(raw)
            for answer in _answers_until_barrier(ws, f"barrier-{i}"):
                assert answer["type"] in SERVER_TYPES
                if answer["type"] == "error":
                    assert answer["error"]["code"] in DOCUMENTED_CODES and answer["error"]["message"]
                    assert answer["timestamp"].endswith("Z")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frames=st.lists(st.one_of(valid_frame.map(json.dumps), frame), max_size=15))
def test_subscription_acks_always_match_the_model(client, frames):
    expected: set[str] = set()
    with connect(client.ws("/ws/market_data")) as ws:
        for i, raw in enumerate(frames):
            ws.send(raw)
            expected = _expected_symbols(expected, raw)
            for answer in _answers_until_barrier(ws, f"barrier-{i}"):
                if answer["type"] == "ack" and answer["action"] in ("subscribe", "unsubscribe"):
                    assert answer["data"]["symbols"] == sorted(expected)
                if answer["type"] == "price_update" and '"get_all"' not in str(raw):
                    assert answer["data"]["symbol"] in expected  # get_all answers with every symbol


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(refused=st.integers(min_value=ABUSE_LIMIT - 3, max_value=ABUSE_LIMIT + 3))
def test_only_more_than_the_abuse_limit_of_refusals_in_a_row_closes_with_1008(client, refused):
    with connect(client.ws("/ws/news")) as ws:
        for _ in range(refused):
            ws.send("not json")
        closed_with = None
        try:
            for barrier in ("first", "second"):  # the second proves the socket is still open
                for message in _answers_until_barrier(ws, barrier):
                    assert message["error"]["code"] == "INVALID_MESSAGE"
        except ConnectionClosed as exc:
            closed_with = exc.rcvd.code if exc.rcvd else None
    assert closed_with == (1008 if refused > ABUSE_LIMIT else None)
