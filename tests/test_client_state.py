"""The Python client's resume state, without a network."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from crypto_hub_client.resume import MAX_SYMBOLS_PER_REQUEST, Backoff, ResumeState

NEWS_URL = "ws://127.0.0.1:7860/ws/news"
MARKET_URL = "ws://127.0.0.1:7860/ws/market_data"


def _news(seq: int, epoch: str = "e1", title: str = "bitcoin up", source: str = "wire") -> str:
    return json.dumps({"type": "news", "seq": seq, "epoch": epoch, "data": {"title": title, "source": source}})


def _price(seq: int, symbol: str, epoch: str = "e1") -> str:
    return json.dumps({"type": "price_update", "seq": seq, "epoch": epoch, "data": {"symbol": symbol}})


def _seqs(state: ResumeState, frames: list[str]) -> list[Any]:
    return [m["seq"] for raw in frames if (m := state.accept(raw)) is not None]


def test_resume_url_without_a_position_is_the_endpoint() -> None:
    assert ResumeState(NEWS_URL + "?backlog=5").resume_url() == NEWS_URL + "?backlog=5"


def test_resume_url_carries_the_last_seq_and_epoch() -> None:
    state = ResumeState(NEWS_URL + "?since=1&keywords=x")
    state.accept(_news(7))
    assert state.resume_url() == NEWS_URL + "?keywords=x&since=7&epoch=e1"


def test_replayed_news_already_delivered_is_dropped() -> None:
    state = ResumeState(NEWS_URL)
    assert _seqs(state, [_news(1), _news(2), _news(2), _news(1), _news(3)]) == [1, 2, 3]
    assert state.stats.duplicates_dropped == 2 and state.last_seq == 3


def test_a_new_epoch_restarts_the_position() -> None:
    state = ResumeState(NEWS_URL, since=50, epoch="old")
    assert _seqs(state, [_news(1, epoch="new")]) == [1]
    assert (state.epoch, state.last_seq) == ("new", 1)


def test_seq_ahead_forgets_the_position_so_the_live_stream_is_delivered() -> None:
    state = ResumeState(NEWS_URL + "?since=50&epoch=e1")
    state.accept(_news(50))
    error = {"type": "error", "error": {"code": "SEQ_AHEAD", "message": "since=50 is ahead of the stream"}}
    assert state.accept(json.dumps(error)) is not None
    assert state.resume_url() == NEWS_URL and _seqs(state, [_news(11), _news(12)]) == [11, 12]


def test_market_seqs_are_tracked_per_symbol() -> None:
    state = ResumeState(MARKET_URL, symbols=["btc"])
    assert _seqs(state, [_price(5, "BTC"), _price(3, "ETH"), _price(4, "BTC")]) == [5, 3]


def test_news_outside_the_filter_is_dropped_locally() -> None:
    state = ResumeState(NEWS_URL, keywords=["Bitcoin"], sources=["Wire"])
    frames = [_news(1), _news(2, title="ether"), _news(3, source="other")]
    assert _seqs(state, frames) == [1] and state.stats.filtered_locally == 2


def test_a_frame_that_is_not_json_is_dropped() -> None:
    assert ResumeState(NEWS_URL).accept("{nope") is None


def test_connect_requests_restore_subscription_in_chunks() -> None:
    symbols = [f"S{i}" for i in range(MAX_SYMBOLS_PER_REQUEST + 1)]
    requests = ResumeState(MARKET_URL, symbols=symbols).connect_requests()
    assert [len(r["symbols"]) for r in requests] == [MAX_SYMBOLS_PER_REQUEST, 1]


def test_connect_requests_restore_the_filter() -> None:
    state = ResumeState(NEWS_URL)
    state.set_filter(["ETF "], ["wire"])
    assert state.connect_requests() == [{"action": "filter", "keywords": ["etf"], "sources": ["wire"]}]


def test_unsubscribe_is_not_replayed_on_reconnect() -> None:
    state = ResumeState(MARKET_URL, symbols=["BTC", "ETH"])
    assert state.unsubscribe(["eth"]) == [{"action": "unsubscribe", "symbols": ["ETH"]}]
    assert state.connect_requests() == [{"action": "subscribe", "symbols": ["BTC"]}]


def test_symbols_on_the_news_endpoint_are_refused() -> None:
    with pytest.raises(ValueError, match="/ws/market_data"):
        ResumeState(NEWS_URL, symbols=["BTC"])


def test_backoff_grows_per_attempt_and_a_stable_connection_resets_it() -> None:
    state = ResumeState(NEWS_URL, backoff=Backoff(initial=1, factor=2, cap=8), rng=random.Random(1))
    delays = [state.next_delay() for _ in range(5)]
    assert all(0 <= d <= c for d, c in zip(delays, [1, 2, 4, 8, 8], strict=True)) and state.attempt == 5
    state.ended(lived_s=1.0, stable_after_s=5.0)
    assert state.attempt == 5
    state.ended(lived_s=5.0, stable_after_s=5.0)
    assert state.attempt == 0
