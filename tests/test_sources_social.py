"""Mentions of tracked symbols in social posts, and the symbol table."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.records import SocialPost
from sources import (
    ASSETS,
    SYMBOLS,
    asset_for,
    count_mentions,
    is_known_symbol,
    provider_ids,
    symbols_mentioned,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("BTC to the moon", {"BTC"}),
        ("$eth and $SOL pumping", {"ETH", "SOL"}),
        ("I like the link you sent, dot dot", set()),
        ("Chainlink and Polkadot news", {"LINK", "DOT"}),
        ("whether or not", set()),
        ("Bitcoin Cash is cash", {"BCH"}),
        ("Bitcoin and Bitcoin Cash", {"BTC", "BCH"}),
        ("BTCUSD perp", set()),
    ],
)
def test_symbols_mentioned_tickers_and_names(text: str, expected: set[str]) -> None:
    assert symbols_mentioned(text) == expected


def test_count_mentions_counts_posts_once_per_symbol() -> None:
    now = datetime(2025, 12, 8, tzinfo=UTC)
    posts = [
        SocialPost("reddit", "1", "BTC BTC bitcoin", now),
        SocialPost("reddit", "2", "ETH and bitcoin", now),
    ]
    counts = count_mentions(posts, ["BTC", "ETH", "SOL"])
    assert counts == {"BTC": 2, "ETH": 1, "SOL": 0}


def test_symbols_table_top20_with_provider_ids() -> None:
    assert len(SYMBOLS) == 20 and SYMBOLS[:2] == ("BTC", "ETH")
    assert len({a.coingecko for a in ASSETS}) == 20
    btc = asset_for("btc")
    assert (btc.coingecko, btc.binance, btc.kraken, btc.coinbase, btc.coinpaprika, btc.coinlore) == (
        "bitcoin",
        "BTCUSDT",
        "XXBTZUSD",
        "BTC-USD",
        "btc-bitcoin",
        "90",
    )


def test_is_known_symbol_and_unknown_lookup_hint() -> None:
    assert is_known_symbol(" sol ") and not is_known_symbol("PEPE")
    with pytest.raises(KeyError, match="expected one of BTC"):
        asset_for("PEPE")


def test_provider_ids_skips_unlisted_assets() -> None:
    assert provider_ids("coinbase", ["BTC", "BNB"]) == {"BTC-USD": "BTC"}
    with pytest.raises(ValueError, match="unknown provider"):
        provider_ids("bitstamp", ["BTC"])
