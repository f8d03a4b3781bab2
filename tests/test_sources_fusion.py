"""Fusing providers' quotes into one quote per symbol."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from core.records import PriceQuote
from sources import QuoteBook, fuse_quote

NOW = datetime(2025, 12, 8, 10, 30, tzinfo=UTC)
PRIORITIES = {
    "binance_ws": 1,
    "binance": 2,
    "kraken": 3,
    "coinbase": 4,
    "coingecko": 5,
    "coinpaprika": 6,
    "coinlore": 7,
}
ALL = set(PRIORITIES)


def quote(source: str, price: float, age_s: float, **fields: Any) -> PriceQuote:
    return PriceQuote("BTC", price, source, NOW - timedelta(seconds=age_s), **fields)


def fuse(candidates: dict[str, PriceQuote], healthy: set[str] = ALL, **kwargs: Any) -> PriceQuote | None:
    return fuse_quote("BTC", candidates, healthy=healthy, now=NOW, priorities=PRIORITIES, **kwargs)


def test_fusion_freshest_price_with_aggregate_cap_and_7d() -> None:
    fused = fuse(
        {
            "binance_ws": quote("binance", 43270.0, 0.5, change_24h=2.5, volume_24h=1.2e9),
            "kraken": quote("kraken", 43255.0, 8.0),
            "coingecko": quote("coingecko", 43250.0, 20.0, change_7d=-1.2, market_cap=8.5e11, change_24h=2.4),
        }
    )
    assert fused is not None
    assert (fused.price, fused.source, fused.change_24h, fused.volume_24h) == (43270.0, "binance", 2.5, 1.2e9)
    assert (fused.change_7d, fused.market_cap) == (-1.2, 8.5e11)


def test_fusion_skips_unhealthy_provider_even_if_freshest() -> None:
    fused = fuse(
        {"binance_ws": quote("binance", 43270.0, 0.1), "kraken": quote("kraken", 43255.0, 5.0)}, {"kraken"}
    )
    assert fused is not None and fused.source == "kraken"


def test_fusion_stale_prices_ignored_and_none_when_all_stale() -> None:
    candidates = {"kraken": quote("kraken", 43255.0, 500.0), "coingecko": quote("coingecko", 43250.0, 200.0)}
    assert fuse(candidates, max_age_s=120.0) is None


def test_fusion_equal_freshness_tie_goes_to_priority() -> None:
    fused = fuse({"kraken": quote("kraken", 43255.0, 1.0), "binance": quote("binance", 43262.0, 2.5)})
    assert fused is not None and fused.source == "binance"


def test_fusion_drops_outlier_price() -> None:
    fused = fuse(
        {
            "binance_ws": quote("binance", 4327.0, 0.1),  # a decimal slip on one venue
            "kraken": quote("kraken", 43255.0, 5.0),
            "coinbase": quote("coinbase", 43258.0, 6.0),
        }
    )
    assert fused is not None and fused.source == "kraken"


def test_fusion_aggregator_fills_missing_24h_fields_in_order() -> None:
    fused = fuse(
        {
            "kraken": quote("kraken", 43255.0, 1.0),
            "coinpaprika": quote(
                "coinpaprika", 43241.0, 100.0, change_24h=2.47, change_7d=-1.19, market_cap=8.49e11
            ),
            "coinlore": quote("coinlore", 43239.0, 60.0, change_24h=2.44, change_7d=-1.25, market_cap=8.5e11),
        }
    )
    assert fused is not None and (fused.change_24h, fused.change_7d, fused.market_cap) == (
        2.47,
        -1.19,
        8.49e11,
    )


def test_fusion_future_timestamp_clamped_to_now() -> None:
    fused = fuse({"kraken": quote("kraken", 43255.0, -30.0)})
    assert fused is not None and fused.timestamp == NOW


def test_quote_book_keeps_latest_per_provider() -> None:
    book = QuoteBook()
    book.update("kraken", [quote("kraken", 1.0, 10.0)])
    touched = book.update("kraken", [quote("kraken", 2.0, 5.0)])
    assert touched == {"BTC"} and book.candidates("BTC")["kraken"].price == 2.0
