"""Pure parsers against recorded-shape fixtures, and against garbage, empty and absurd bodies."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from sources import (
    SYMBOLS,
    SourceError,
    SourceUnavailable,
    UpstreamGarbage,
    UpstreamRateLimited,
    parse_cryptocompare_news,
    parse_cryptopanic_posts,
    parse_fear_greed,
    parse_feed,
    parse_reddit_listing,
    parse_twitter_search,
    provider_ids,
)
from sources.market import (
    parse_binance_mini_tickers,
    parse_binance_ticker_24hr,
    parse_coinbase_stats,
    parse_coingecko_markets,
    parse_coinlore_tickers,
    parse_coinpaprika_tickers,
    parse_kraken_ticker,
)
from sources.parsing import PARSE_OFF_LOOP_BYTES, parse_off_loop
from tests.upstream import FIXED_NOW, load_fixture

NOW_MS = int(FIXED_NOW.timestamp() * 1000)

PARSERS: dict[str, Callable[[bytes], list[Any]]] = {
    "coingecko": lambda raw: parse_coingecko_markets(raw, provider_ids("coingecko", SYMBOLS)),
    "binance": lambda raw: parse_binance_ticker_24hr(raw, provider_ids("binance", SYMBOLS)),
    "kraken": lambda raw: parse_kraken_ticker(raw, provider_ids("kraken", SYMBOLS)),
    "coinbase": lambda raw: [parse_coinbase_stats(raw, "BTC")],
    "coinpaprika": lambda raw: parse_coinpaprika_tickers(raw, provider_ids("coinpaprika", SYMBOLS)),
    "coinlore": lambda raw: parse_coinlore_tickers(raw, SYMBOLS),
    "fng": parse_fear_greed,
    "reddit": parse_reddit_listing,
    "cryptopanic": parse_cryptopanic_posts,
    "cryptocompare": parse_cryptocompare_news,
    "twitter": parse_twitter_search,
}

# A body of the right shape with nothing in it.
EMPTY: dict[str, Any] = {
    "coingecko": [],
    "binance": [],
    "kraken": {"error": [], "result": {}},
    "coinbase": {},
    "coinpaprika": [],
    "coinlore": {"data": [], "info": {"coins_num": 0, "time": 1765189800}},
    "fng": {"name": "Fear and Greed Index", "data": [], "metadata": {"error": None}},
    "reddit": {"kind": "Listing", "data": {"children": []}},
    "cryptopanic": {"results": []},
    "cryptocompare": {"Type": 100, "Data": []},
    "twitter": {"meta": {"result_count": 0}},
}

# A body of the right shape whose only item is absurd or mistyped.
ABSURD: dict[str, Any] = {
    "coingecko": [{"id": "bitcoin", "current_price": -5, "last_updated": "2025-12-08T10:29:40.000Z"}],
    "binance": [{"symbol": "BTCUSDT", "lastPrice": "0.00000000", "closeTime": NOW_MS}],
    "kraken": {
        "error": [],
        "result": {"XXBTZUSD": {"c": ["0.00000", "1"], "v": ["1", "1"], "p": ["1", "1"]}},
    },
    "coinbase": {"open": "100.0", "last": "-3", "volume": "1"},
    "coinpaprika": [{"id": "btc-bitcoin", "quotes": {"USD": {"price": "NaN", "market_cap": 1}}}],
    "coinlore": {"data": [{"id": "90", "symbol": "BTC", "price_usd": "0.00"}]},
    "fng": {"data": [{"value": "250", "value_classification": "Greed", "timestamp": "1765152000"}]},
    "reddit": {"kind": "Listing", "data": {"children": [{"kind": "t3", "data": {"id": "a", "title": "t"}}]}},
    "cryptopanic": {
        "results": [{"title": "t", "url": "javascript:alert(1)", "published_at": "2025-12-08T10:00:00Z"}]
    },
    "cryptocompare": {"Data": [{"title": "t", "url": "https://example.com/a", "published_on": "soon"}]},
    "twitter": {"data": [{"id": "1", "text": "", "created_at": "2025-12-08T10:00:00Z"}]},
}

GARBAGE = {
    "html": load_fixture("html_error_page.html"),
    "malformed": b'[{"id": "bitcoin", "current_price": 43250.5,',
    "empty_body": b"",
    "wrong_type": b'"just a string"',
    "nan_literal": b'[{"id": "bitcoin", "current_price": NaN}]',
}


@pytest.mark.parametrize("provider", sorted(PARSERS))
@pytest.mark.parametrize("kind", sorted(GARBAGE))
def test_parser_garbage_raises_upstream_garbage(provider: str, kind: str) -> None:
    with pytest.raises(UpstreamGarbage):
        PARSERS[provider](GARBAGE[kind])


@pytest.mark.parametrize("provider", sorted(PARSERS))
def test_parser_empty_body_raises_upstream_garbage(provider: str) -> None:
    with pytest.raises(UpstreamGarbage):
        PARSERS[provider](json.dumps(EMPTY[provider]).encode())


@pytest.mark.parametrize("provider", sorted(PARSERS))
def test_parser_absurd_only_item_raises_upstream_garbage(provider: str) -> None:
    with pytest.raises(UpstreamGarbage):
        PARSERS[provider](json.dumps(ABSURD[provider]).encode())


def test_coingecko_markets_fixture_fields() -> None:
    quotes = parse_coingecko_markets(
        load_fixture("coingecko_markets.json"), provider_ids("coingecko", SYMBOLS)
    )
    btc = {q.symbol: q for q in quotes}["BTC"]
    assert [q.symbol for q in quotes] == ["BTC", "ETH", "USDT", "SOL"]
    assert (btc.price, btc.change_24h, btc.change_7d) == (43250.5, 2.49857, -1.2048)
    assert (btc.volume_24h, btc.market_cap, btc.source) == (25012345678, 850012345678, "coingecko")
    assert btc.timestamp == FIXED_NOW - timedelta(seconds=20)


def test_coingecko_bad_items_skipped_with_reasons() -> None:
    body = [
        {"id": "bitcoin", "current_price": 0},
        {"id": "ethereum", "current_price": [2300]},
        {"id": "solana", "current_price": True},
        {"id": "dogecoin", "current_price": 0.09, "market_cap": -1},
        {"id": "cardano", "current_price": 0.5, "price_change_percentage_24h": -140},
        {"id": "tron", "current_price": 0.2},
    ]
    rejects: list[str] = []
    quotes = parse_coingecko_markets(
        json.dumps(body).encode(), provider_ids("coingecko", SYMBOLS), rejects=rejects
    )
    assert [q.symbol for q in quotes] == ["TRX"]
    assert len(rejects) == 5
    assert rejects[0].startswith("bitcoin: current_price is 0.0, expected > 0")


def test_coingecko_unrequested_coins_ignored_not_rejected() -> None:
    rejects: list[str] = []
    body = json.dumps([{"id": "bitcoin", "current_price": 1.0}, {"id": "pepe", "current_price": -1}]).encode()
    quotes = parse_coingecko_markets(body, {"bitcoin": "BTC"}, rejects=rejects)
    assert [q.symbol for q in quotes] == ["BTC"] and rejects == []


def test_binance_ticker_uses_quote_volume_as_usd() -> None:
    quotes = parse_binance_ticker_24hr(
        load_fixture("binance_ticker_24hr.json"), provider_ids("binance", SYMBOLS)
    )
    btc = {q.symbol: q for q in quotes}["BTC"]
    assert (btc.price, btc.change_24h, btc.volume_24h) == (43262.01, 2.489, 1214923876.123456)
    assert btc.timestamp == FIXED_NOW - timedelta(seconds=2)
    assert btc.change_7d is None and btc.market_cap is None


def test_binance_error_object_raises_with_message() -> None:
    with pytest.raises(UpstreamGarbage, match="Invalid symbol"):
        parse_binance_ticker_24hr(b'{"code": -1121, "msg": "Invalid symbol."}', {"BTCUSDT": "BTC"})


def test_binance_mini_ticker_filters_pairs_and_computes_change() -> None:
    quotes = parse_binance_mini_tickers(
        load_fixture("binance_mini_ticker.json"), provider_ids("binance", SYMBOLS)
    )
    assert [q.symbol for q in quotes] == ["BTC", "ETH"]
    assert quotes[0].price == 43270.55
    assert quotes[0].change_24h == pytest.approx((43270.55 - 42211.61) / 42211.61 * 100)
    assert quotes[0].timestamp == FIXED_NOW


def test_binance_mini_ticker_unwraps_combined_stream_and_allows_no_tracked_pairs() -> None:
    wrapped = b'{"stream": "!miniTicker@arr", "data": []}'
    assert parse_binance_mini_tickers(wrapped, {"BTCUSDT": "BTC"}) == []


def test_kraken_ticker_xbt_naming_and_usd_volume() -> None:
    quotes = parse_kraken_ticker(
        load_fixture("kraken_ticker.json"), provider_ids("kraken", SYMBOLS), now=FIXED_NOW
    )
    btc = {q.symbol: q for q in quotes}["BTC"]
    assert btc.price == 43255.1 and btc.timestamp == FIXED_NOW
    assert btc.volume_24h == pytest.approx(3120.51230017 * 42950.54321)
    assert btc.change_24h is None  # Kraken's `o` is the UTC-day open, not a 24 h open


def test_kraken_in_body_rate_limit_raises_rate_limited() -> None:
    with pytest.raises(UpstreamRateLimited):
        parse_kraken_ticker(b'{"error": ["EGeneral:Too many requests"]}', {"XXBTZUSD": "BTC"})


def test_kraken_in_body_error_raises_source_unavailable() -> None:
    with pytest.raises(SourceUnavailable, match="Unknown asset pair"):
        parse_kraken_ticker(b'{"error": ["EQuery:Unknown asset pair"]}', {"XXBTZUSD": "BTC"})


def test_coinbase_stats_change_from_24h_open() -> None:
    quote = parse_coinbase_stats(load_fixture("coinbase_stats_btc.json"), "BTC", now=FIXED_NOW)
    assert quote.price == 43258.77
    assert quote.change_24h == pytest.approx((43258.77 - 42230.01) / 42230.01 * 100)
    assert quote.volume_24h == pytest.approx(10234.51234567 * 43258.77)


def test_coinpaprika_tickers_ignores_untracked_coins() -> None:
    quotes = parse_coinpaprika_tickers(
        load_fixture("coinpaprika_tickers.json"), provider_ids("coinpaprika", SYMBOLS)
    )
    assert [q.symbol for q in quotes] == ["BTC", "ETH", "DOGE"]
    assert (quotes[0].change_7d, quotes[0].market_cap) == (-1.19, 849876543210)


def test_coinlore_matches_by_id_and_symbol_with_string_numbers() -> None:
    quotes = {q.symbol: q for q in parse_coinlore_tickers(load_fixture("coinlore_tickers.json"), SYMBOLS)}
    assert set(quotes) == {"BTC", "ETH", "USDC", "SOL"}
    assert (quotes["BTC"].price, quotes["BTC"].change_7d) == (43239.12, -1.25)
    assert quotes["USDC"].market_cap == 28765432109.0
    assert quotes["BTC"].timestamp == FIXED_NOW - timedelta(seconds=60)


def test_coinlore_best_ranked_symbol_wins_over_imposter() -> None:
    body = {
        "data": [
            {"id": "1", "symbol": "SUI", "price_usd": "3.1"},
            {"id": "2", "symbol": "SUI", "price_usd": "0.01"},
        ]
    }
    quotes = parse_coinlore_tickers(json.dumps(body).encode(), ["SUI"])
    assert [q.price for q in quotes] == [3.1]


def test_fear_greed_newest_first_with_utc_time() -> None:
    readings = parse_fear_greed(load_fixture("fng.json"))
    assert [(r.value, r.classification) for r in readings] == [(75, "Extreme Greed"), (68, "Greed")]
    assert readings[0].timestamp == FIXED_NOW - timedelta(hours=1)


def test_fear_greed_metadata_error_raises_source_unavailable() -> None:
    with pytest.raises(SourceUnavailable, match="limit"):
        parse_fear_greed(b'{"data": [], "metadata": {"error": "limit exceeded"}}')


def test_reddit_listing_posts_and_removed_body() -> None:
    posts = parse_reddit_listing(load_fixture("reddit_cryptocurrency_new.json"))
    assert [p.post_id for p in posts] == ["1h9zq1a", "1h9zq2b", "1h9zq3c"]
    assert posts[0].text.startswith("Bitcoin ETF inflows") and "ETF inflows this week" in posts[0].text
    assert posts[2].text == "Daily Crypto Discussion"  # "[removed]" body dropped
    assert posts[0].url == (
        "https://www.reddit.com/r/CryptoCurrency/comments/1h9zq1a/bitcoin_etf_inflows_keep_climbing_btc_looks_strong/"
    )
    assert posts[0].created_at == FIXED_NOW - timedelta(minutes=5)


def test_cryptopanic_prefers_original_url_and_source_title() -> None:
    items = parse_cryptopanic_posts(load_fixture("cryptopanic_posts.json"))
    assert items[0].url.startswith("https://www.coindesk.com/markets/") and items[0].source == "CoinDesk"
    assert items[1].url.startswith("https://cryptopanic.com/news/") and items[1].image_url is None


def test_cryptocompare_news_strips_html_and_names_source() -> None:
    items = parse_cryptocompare_news(load_fixture("cryptocompare_news.json"))
    assert [i.source for i in items] == ["CoinTelegraph", "Decrypt"]
    assert items[1].description == "The Cardano network activated its long-planned governance features."


def test_cryptocompare_rate_limit_message_raises_rate_limited() -> None:
    with pytest.raises(UpstreamRateLimited):
        parse_cryptocompare_news(
            b'{"Response": "Error", "Message": "You are over your rate limit please upgrade"}'
        )


def test_twitter_search_posts() -> None:
    posts = parse_twitter_search(load_fixture("twitter_search_recent.json"))
    assert [p.platform for p in posts] == ["twitter", "twitter"]
    assert posts[0].url == "https://x.com/i/web/status/1866012345678901234"


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)


@pytest.mark.parametrize("provider", sorted(PARSERS))
@settings(max_examples=60, deadline=None)
@given(value=JSON_VALUES)
def test_parser_arbitrary_json_raises_only_source_errors(provider: str, value: Any) -> None:
    """Whatever JSON an upstream sends, a parser returns records or raises our own error."""
    try:
        records = PARSERS[provider](json.dumps(value).encode())
    except SourceError:
        return
    assert records  # a parser never returns an empty success


@settings(max_examples=100, deadline=None)
@given(raw=st.binary(max_size=300))
def test_feed_parser_arbitrary_bytes_raises_only_source_errors(raw: bytes) -> None:
    try:
        parse_feed(raw, source="Fuzz")
    except SourceError:
        pass


async def test_parse_off_loop_keeps_the_loop_running_while_a_large_body_parses() -> None:
    ticked = threading.Event()

    def parse(raw: bytes) -> bool:
        # Returns True only if the loop ran a callback meanwhile, which it cannot while running this.
        return ticked.wait(timeout=5)

    asyncio.get_running_loop().call_soon(ticked.set)
    assert await parse_off_loop(parse, b" " * PARSE_OFF_LOOP_BYTES) is True


async def test_parse_off_loop_parses_a_small_body_on_the_loop_thread() -> None:
    threads: list[threading.Thread] = []

    def parse(raw: bytes) -> int:
        threads.append(threading.current_thread())
        return len(raw)

    assert await parse_off_loop(parse, b"[]") == 2 and threads == [threading.current_thread()]
