"""CoinGecko `/coins/markets`: price, 24 h and 7 d change, volume and market cap (keyless).

The only keyless source of both `change_7d` and market cap for every symbol in one call.
Docs: https://docs.coingecko.com/reference/coins-markets
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any, Unpack

from core.records import PriceQuote

from ..http import UpstreamHttp
from ..parsing import load_json_list, parse_off_loop, parse_timestamp
from ..pool import ProviderSpec
from .base import MarketProvider, ParseOptions, QuoteFields, collect_quotes, read_quote

__all__ = ["CoinGeckoProvider", "parse_coingecko_markets"]

NAME = "coingecko"

# `*_in_currency` is what `price_change_percentage=24h,7d` adds; the bare 24 h field is the fallback.
FIELDS = QuoteFields("current_price", "price_change_percentage_24h_in_currency",
                     "price_change_percentage_7d_in_currency", volume_24h="total_volume", market_cap="market_cap")
FIELDS_BARE_24H = replace(FIELDS, change_24h="price_change_percentage_24h")


def parse_coingecko_markets(raw: bytes, ids: Mapping[str, str], **options: Unpack[ParseOptions]) -> list[PriceQuote]:
    """Parse a `/coins/markets` body into quotes for the coins in `ids` (CoinGecko id -> symbol).

    Raises:
        UpstreamGarbage: not a JSON array, or no usable quote in it.
    """
    items = load_json_list(raw, NAME, "coins/markets")
    return collect_quotes(items, ids, _quote, source=NAME, id_field="id", **options)


def _quote(item: dict[str, Any], symbol: str, now: datetime) -> PriceQuote:
    fields = FIELDS if "price_change_percentage_24h_in_currency" in item else FIELDS_BARE_24H
    last_updated = item.get("last_updated")
    stamp = parse_timestamp(last_updated, "last_updated") if last_updated is not None else now
    return read_quote(item, fields, symbol=symbol, source=NAME, timestamp=stamp)


class CoinGeckoProvider(MarketProvider):
    """CoinGecko markets for the tracked symbols.

    Keyless calls are limited per IP (roughly 5-30 a minute, shared with every Space on the
    host), so a 30 s budget keeps us well inside it.
    """

    spec = ProviderSpec(NAME, "market_data", 5, timeout_s=10.0, min_interval_s=30.0,
                        url_setting="coingecko_url")

    async def fetch(self, http: UpstreamHttp) -> list[PriceQuote]:
        params = {
            "vs_currency": "usd",
            "ids": ",".join(self.ids),
            "price_change_percentage": "24h,7d",
            "per_page": "250",
            "page": "1",
        }
        reply = await http.get(
            f"{self.base_url}/coins/markets", params=params, headers={"Accept": "application/json"}
        )
        return await parse_off_loop(parse_coingecko_markets, reply.body, self.ids, rejects=self.fresh_rejects())
