"""The protocol state of one socket, driven in-process with a hand-moved clock: no socket, no sleep."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel

from core.bus import Bus
from core.config import LimitsSection
from core.endpoints import MARKET_PATH, NEWS_PATH, SENTIMENT_PATH
from ws.routes import ENDPOINTS
from ws.session_state import ABUSE_LIMIT, SINCE_AHEAD_GRACE_S, SessionState, SocketStats

SPECS = {spec.path: spec for spec in ENDPOINTS}
SYMBOLS = frozenset({"BTC", "ETH"})


class _Item(BaseModel):
    type: str = "news"
    seq: int = 0
    epoch: str = ""
    data: dict[str, Any] = {}


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _state(path: str, bus: Bus | None = None, **limits: Any) -> tuple[SessionState, _Clock, list[Any]]:
    clock = _Clock()
    index: list[tuple[set[str], set[str]]] = []
    state = SessionState(SPECS[path], LimitsSection(**limits), bus or Bus(), SYMBOLS, SocketStats(), clock,
                         lambda added, removed: index.append((set(added), set(removed))))
    return state, clock, index


def _frames(state: SessionState) -> list[dict[str, Any]]:
    out = []
    while (text := state.next_frame()) is not None:
        out.append(json.loads(text))
    return out


def _publish_news(bus: Bus, title: str, source: str = "wire") -> None:
    bus.publish("news", _Item(data={"title": title}), match_text=title, source=source)


def _publish_price(bus: Bus, symbol: str, price: float) -> None:
    bus.publish("market", _Item(type="price_update", data={"symbol": symbol, "price": price}), key=symbol)


def test_subscribe_unknown_symbol_answers_invalid_symbol() -> None:
    state, _, _ = _state(MARKET_PATH)
    state.receive(json.dumps({"action": "subscribe", "symbols": ["NOPE"], "id": 3}))
    error, ack = _frames(state)
    assert (error["error"]["code"], error["id"]) == ("INVALID_SYMBOL", 3)
    assert ack["action"] == "subscribe" and ack["data"]["symbols"] == []


def test_subscribe_known_symbol_acks_with_topic_position_and_indexes_it() -> None:
    bus = Bus()
    _publish_price(bus, "ETH", 2.0)
    state, _, index = _state(MARKET_PATH, bus)
    state.receive(json.dumps({"action": "subscribe", "symbols": ["btc"], "id": 1}))
    (ack,) = _frames(state)
    assert ack["data"] == {"symbols": ["BTC"], "seq": 1, "epoch": bus.epoch("market")}
    assert index == [({"BTC"}, set())]


def test_subscribe_sends_latest_price_of_a_new_symbol_after_the_ack() -> None:
    bus = Bus()
    _publish_price(bus, "BTC", 1.0)
    state, _, _ = _state(MARKET_PATH, bus)
    state.receive(json.dumps({"action": "subscribe", "symbols": ["BTC"]}))
    ack, price = _frames(state)
    assert ack["type"] == "ack" and price["data"] == {"symbol": "BTC", "price": 1.0}


def test_unsubscribe_removes_symbols_from_the_index() -> None:
    state, _, index = _state(MARKET_PATH)
    state.receive(json.dumps({"action": "subscribe", "symbols": ["BTC", "ETH"]}))
    state.receive(json.dumps({"action": "unsubscribe", "symbols": ["eth"]}))
    assert index[-1] == (set(), {"ETH"}) and state.symbols == {"BTC"}


def test_prices_of_one_symbol_coalesce_while_waiting() -> None:
    bus = Bus()
    state, _, _ = _state(MARKET_PATH, bus)
    state.receive(json.dumps({"action": "subscribe", "symbols": ["BTC", "ETH"]}))
    _frames(state)
    for price in (1.0, 2.0):
        _publish_price(bus, "BTC", price)
        state.offer(bus.latest("market", "BTC"))  # type: ignore[arg-type]
    _publish_price(bus, "ETH", 5.0)
    state.offer(bus.latest("market", "ETH"))  # type: ignore[arg-type]
    assert [f["data"]["price"] for f in _frames(state)] == [2.0, 5.0]
    assert state.outbox.coalesced == 1


def test_price_of_an_unsubscribed_symbol_is_not_queued() -> None:
    bus = Bus()
    state, _, _ = _state(MARKET_PATH, bus)
    _publish_price(bus, "BTC", 1.0)
    assert state.offer(bus.latest("market", "BTC")) is False  # type: ignore[arg-type]


def test_ping_answers_pong_with_its_id() -> None:
    state, _, _ = _state(SENTIMENT_PATH)
    state.receive(json.dumps({"type": "ping", "id": "a"}))
    (pong,) = _frames(state)
    assert (pong["type"], pong["id"]) == ("pong", "a")


def test_action_of_another_endpoint_answers_unknown_action_naming_its_owner() -> None:
    state, _, _ = _state(NEWS_PATH)
    state.receive(json.dumps({"action": "subscribe", "symbols": ["BTC"]}))
    (error,) = _frames(state)
    assert error["error"]["code"] == "UNKNOWN_ACTION" and MARKET_PATH in error["error"]["details"]


def test_frame_over_the_size_limit_answers_message_too_large() -> None:
    state, _, _ = _state(SENTIMENT_PATH, max_frame_bytes=256)
    state.receive("x" * 300)
    (error,) = _frames(state)
    assert error["error"]["code"] == "MESSAGE_TOO_LARGE"


def test_messages_past_the_budget_answer_rate_limited_once_per_flood() -> None:
    state, _, _ = _state(SENTIMENT_PATH, message_burst=2, messages_per_second=1.0)
    for i in range(5):
        state.receive(json.dumps({"type": "ping", "id": i}))
    frames = _frames(state)
    assert [f["type"] for f in frames] == ["pong", "pong", "error"]
    assert frames[2]["error"]["code"] == "RATE_LIMITED"


def test_budget_refills_as_the_clock_moves() -> None:
    state, clock, _ = _state(SENTIMENT_PATH, message_burst=1, messages_per_second=1.0)
    state.receive(json.dumps({"type": "ping", "id": 1}))
    state.receive(json.dumps({"type": "ping", "id": 2}))
    clock.now += 1.0
    state.receive(json.dumps({"type": "ping", "id": 3}))
    assert [(f["type"], f.get("id")) for f in _frames(state)] == [("pong", 1), ("error", None), ("pong", 3)]


def test_refused_messages_past_the_abuse_limit_request_close_1008() -> None:
    state, _, _ = _state(SENTIMENT_PATH, message_burst=10_000)
    for _ in range(ABUSE_LIMIT):
        state.receive("not json")
    assert not state.closing
    state.receive("not json")
    assert (state.close_code, state.close_reason) == (1008, "too many refused messages")


def test_an_accepted_message_resets_the_abuse_count() -> None:
    state, _, _ = _state(SENTIMENT_PATH, message_burst=10_000)
    for _ in range(ABUSE_LIMIT):
        state.receive("not json")
    state.receive(json.dumps({"type": "ping"}))
    state.receive("not json")
    assert not state.closing and state.refused_in_a_row == 1


def test_idle_clock_requests_close_1000_after_the_timeout() -> None:
    state, clock, _ = _state(SENTIMENT_PATH, idle_timeout_s=30.0)
    clock.now += 29.9
    assert not state.check_idle()
    clock.now += 0.1
    assert state.check_idle() and state.close_code == 1000 and state.stats.idle_closes == 1
    assert state.idle_deadline() is None


def test_a_written_frame_restarts_the_idle_clock() -> None:
    state, clock, _ = _state(SENTIMENT_PATH, idle_timeout_s=30.0)
    clock.now += 20
    state.sent()
    clock.now += 20
    assert not state.check_idle() and state.idle_deadline() == clock.now + 10


def test_news_filter_drops_items_without_a_keyword() -> None:
    bus = Bus()
    state, _, _ = _state(NEWS_PATH, bus)
    state.receive(json.dumps({"action": "filter", "keywords": ["Bitcoin"]}))
    (ack,) = _frames(state)
    assert ack["data"]["keywords"] == ["bitcoin"]
    _publish_news(bus, "bitcoin rallies")
    _publish_news(bus, "ether slips")
    for env in bus.history("news"):
        state.offer(env)
    assert [f["data"]["title"] for f in _frames(state)] == ["bitcoin rallies"]


def test_too_many_keywords_clear_the_filter_and_answer_invalid_message() -> None:
    state, _, _ = _state(NEWS_PATH, max_keywords=2)
    state.receive(json.dumps({"action": "filter", "keywords": ["a"]}))
    state.receive(json.dumps({"action": "filter", "keywords": ["a", "b", "c"]}))
    frames = _frames(state)
    assert frames[-1]["error"]["code"] == "INVALID_MESSAGE" and state.keywords == ()


def test_news_past_the_outbox_bound_answer_slow_consumer_and_request_close_1013() -> None:
    bus = Bus()
    state, _, _ = _state(NEWS_PATH, bus, outbox_size=4)
    for i in range(5):
        _publish_news(bus, f"item {i}")
        state.offer(bus.history("news")[-1])
    (error,) = _frames(state)
    assert error["error"]["code"] == "SLOW_CONSUMER" and state.close_code == 1013
    assert state.stats.slow_consumer_closes == 1 and state.stats.dropped_on_close == 4


def test_a_closing_state_ignores_messages_and_envelopes() -> None:
    bus = Bus()
    state, _, _ = _state(NEWS_PATH, bus)
    state.request_close(1001, "going away")
    state.receive(json.dumps({"type": "ping"}))
    _publish_news(bus, "late")
    assert state.offer(bus.history("news")[-1]) is False and _frames(state) == []
    state.request_close(1000, "second request")
    assert (state.close_code, state.close_reason) == (1001, "going away")


def test_since_replays_the_news_after_that_seq() -> None:
    bus = Bus()
    for i in range(3):
        _publish_news(bus, f"item {i}")
    state, _, _ = _state(NEWS_PATH, bus)
    state.greet({"since": "1", "epoch": bus.epoch("news")})
    assert [f["seq"] for f in _frames(state)] == [2, 3]


def test_resume_ahead_of_this_process_does_not_resend_what_the_client_has() -> None:
    # Behind a shared port a client resumes on a process whose bus is behind the client's seq.
    leader, behind = Bus(), Bus()
    behind.set_relay(behind.deliver)  # a cluster's process: its bus is fed through a relay
    for i in range(3):
        _publish_news(leader, f"item {i}")
    for envelope in leader.history("news")[:1]:
        behind.ingest(envelope)
    state, _, _ = _state(NEWS_PATH, behind)
    state.greet({"since": "3", "epoch": leader.epoch("news")})
    _publish_news(leader, "item 3")
    for envelope in leader.history("news")[1:]:
        behind.ingest(envelope)
        state.offer(envelope)
    assert [f["seq"] for f in _frames(state)] == [4]


def test_since_ahead_of_the_stream_answers_seq_ahead_then_streams_live() -> None:
    bus = Bus()
    _publish_news(bus, "item 0")
    state, _, _ = _state(NEWS_PATH, bus)
    state.greet({"since": "50", "epoch": bus.epoch("news")})
    _publish_news(bus, "item 1")
    state.offer(bus.history("news")[-1])
    error, item = _frames(state)
    assert error["error"]["code"] == "SEQ_AHEAD" and "newest seq is 1" in error["error"]["message"]
    assert item["seq"] == 2


def test_since_ahead_of_a_snapshot_topic_answers_seq_ahead_and_the_snapshot() -> None:
    bus = Bus()
    bus.publish("sentiment", _Item(type="sentiment_update"))
    state, _, _ = _state(SENTIMENT_PATH, bus)
    state.greet({"since": "9", "epoch": bus.epoch("sentiment")})
    assert [f["type"] for f in _frames(state)] == ["error", "sentiment_update"]


def test_since_ahead_in_a_cluster_answers_seq_ahead_once_the_grace_passes() -> None:
    bus = Bus()
    bus.set_relay(bus.deliver)
    _publish_news(bus, "item 0")
    state, clock, _ = _state(NEWS_PATH, bus)
    state.greet({"since": "50", "epoch": bus.epoch("news")})
    assert _frames(state) == [] and state.idle_deadline() == clock.now + SINCE_AHEAD_GRACE_S
    clock.now += SINCE_AHEAD_GRACE_S
    assert state.check_idle() and state.close_code is None
    _publish_news(bus, "item 1")
    state.offer(bus.history("news")[-1])
    assert [f.get("seq") or f["error"]["code"] for f in _frames(state)] == ["SEQ_AHEAD", 2]


def test_since_older_than_the_history_answers_history_gap() -> None:
    bus = Bus(history_size=2)
    for i in range(5):
        _publish_news(bus, f"item {i}")
    state, _, _ = _state(NEWS_PATH, bus)
    state.greet({"since": "1"})
    (error,) = _frames(state)
    assert error["error"]["code"] == "HISTORY_GAP"


@pytest.mark.parametrize("query", [{"since": "yesterday"}, {"backlog": "11"}],
                         ids=["since-not-integer", "backlog-over-limit"])
def test_a_query_the_news_stream_cannot_honour_answers_invalid_message(query: dict[str, str]) -> None:
    state, _, _ = _state(NEWS_PATH, max_news_backlog=10)
    state.greet(query)
    (error,) = _frames(state)
    assert error["error"]["code"] == "INVALID_MESSAGE"


def test_backlog_sends_the_latest_matching_items_oldest_first() -> None:
    bus = Bus()
    for title in ("bitcoin one", "ether", "bitcoin two", "bitcoin three"):
        _publish_news(bus, title)
    state, _, _ = _state(NEWS_PATH, bus)
    state.greet({"backlog": "2", "keywords": "bitcoin"})
    assert [f["data"]["title"] for f in _frames(state)] == ["bitcoin two", "bitcoin three"]




def test_symbols_in_the_url_subscribe_without_an_ack() -> None:
    state, _, index = _state(MARKET_PATH)
    state.greet({"symbols": "BTC,NOPE"})
    (error,) = _frames(state)
    assert error["error"]["code"] == "INVALID_SYMBOL" and state.symbols == {"BTC"} and index == [({"BTC"}, set())]


def test_greeting_sends_the_topics_latest_snapshot() -> None:
    bus = Bus()
    bus.publish("sentiment", _Item(type="sentiment_update", data={"score": 0.5}))
    state, _, _ = _state(SENTIMENT_PATH, bus)
    state.greet({})
    (frame,) = _frames(state)
    assert frame["type"] == "sentiment_update" and frame["seq"] == 1


def test_finish_unindexes_symbols_and_adds_coalesced_frames_to_the_totals() -> None:
    bus = Bus()
    state, _, index = _state(MARKET_PATH, bus)
    state.receive(json.dumps({"action": "subscribe", "symbols": ["BTC"]}))
    for price in (1.0, 2.0):
        _publish_price(bus, "BTC", price)
        state.offer(bus.latest("market", "BTC"))  # type: ignore[arg-type]
    state.finish()
    assert index[-1] == (set(), {"BTC"}) and state.stats.coalesced == 1
