"""Binance spot: REST `/api/v3/ticker/24hr` and the `!miniTicker@arr` stream's message format.

Symbols are USDT pairs (`BTCUSDT`); `quoteVolume` (in USDT) is our USD volume.
Docs: https://developers.binance.com/docs/binance-spot-api-docs/rest-api/market-data-endpoints
and .../web-socket-streams (All Market Mini Tickers Stream).

The defaults are Binance's market-data-only mirrors `https://data-api.binance.vision` and
`wss://data-stream.binance.vision` (same formats; docs: .../faqs/market_data_only), because
api.binance.com and stream.binance.com answer HTTP 451 to US-hosted machines such as most
HuggingFace Spaces. A 451 is a geo-block (`sources/geoblock.py`): the health reason names the mirror.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Unpack

from core.records import PriceQuote

from ..errors import UpstreamGarbage
from ..http import UpstreamHttp
from ..parsing import (
    collect_items,
    load_json,
    optional_change,
    optional_nonnegative,
    parse_epoch,
    parse_off_loop,
    positive_number,
    require_list,
    require_object,
    require_text,
)
from ..pool import ProviderSpec
from .base import MarketProvider, ParseOptions, QuoteFields, collect_quotes, read_quote

__all__ = [
    "BinanceProvider",
    "parse_binance_mini_tickers",
    "parse_binance_ticker_24hr",
]

NAME = "binance"


REST_FIELDS = QuoteFields(price="lastPrice", change_24h="priceChangePercent", volume_24h="quoteVolume")


def parse_binance_ticker_24hr(raw: bytes, ids: Mapping[str, str], **options: Unpack[ParseOptions]) -> list[PriceQuote]:
    """Parse a `/api/v3/ticker/24hr` array into quotes for the pairs in `ids` (BTCUSDT -> BTC).

    Raises:
        UpstreamGarbage: an error object, not an array, or no usable ticker.
    """
    body = load_json(raw, NAME)
    if isinstance(body, dict) and "code" in body:
        # Binance reports errors as {"code": -1121, "msg": "Invalid symbol."}.
        raise UpstreamGarbage(f"{NAME}: error {body.get('code')}: {body.get('msg')}")
    items = require_list(body, NAME, "ticker/24hr")
    return collect_quotes(items, ids, _rest_quote, source=NAME, id_field="symbol", **options)


def _rest_quote(item: dict[str, Any], symbol: str, now: datetime) -> PriceQuote:
    close_time = item.get("closeTime")
    stamp = parse_epoch(close_time, "closeTime", millis=True) if close_time is not None else now
    return read_quote(item, REST_FIELDS, symbol=symbol, source=NAME, timestamp=stamp)


def parse_binance_mini_tickers(
    raw: bytes | str,
    ids: Mapping[str, str],
    *,
    rejects: list[str] | None = None,
) -> list[PriceQuote]:
    """Parse one `!miniTicker@arr` message (or its combined-stream wrapper) into quotes.

    Only changed tickers are in each message, so an empty result is normal; a message that is
    not the documented shape raises `UpstreamGarbage`.
    """
    rejects = rejects if rejects is not None else []
    body = load_json(raw.encode() if isinstance(raw, str) else raw, "binance_ws")
    if isinstance(body, dict) and "data" in body:
        body = body["data"]  # /stream?streams=... wraps each payload as {"stream", "data"}
    items = require_list(body, "binance_ws", "miniTicker array")
    quotes = collect_items(items, lambda item: _mini_quote(item, ids), label="s", rejects=rejects)
    if items and not quotes and rejects:
        raise UpstreamGarbage(f"binance_ws: 0 of {len(items)} tickers usable ({'; '.join(rejects[:3])})")
    return quotes


def _mini_quote(item: Any, ids: Mapping[str, str]) -> PriceQuote | None:
    item = require_object(item)
    symbol = ids.get(require_text(item.get("s"), "s"))
    if symbol is None:
        return None
    close = positive_number(item.get("c"), "c")
    open_ = positive_number(item.get("o"), "o")
    return PriceQuote(
        symbol=symbol,
        price=close,
        source=NAME,
        timestamp=parse_epoch(item.get("E"), "E", millis=True),
        # The mini ticker carries the rolling 24 h open, so this is the same change REST reports.
        change_24h=optional_change((close - open_) / open_ * 100.0, "change_24h"),
        volume_24h=optional_nonnegative(item.get("q"), "q"),
    )


class BinanceProvider(MarketProvider):
    """Binance REST 24 h tickers; the fallback while the stream is down.

    The call weighs 2-40 of the 6000-per-minute IP budget, so a 10 s budget is cheap.
    """

    # After Kraken and Coinbase: whether Binance answers depends on where the app runs and on
    # BINANCE_URL (api.binance.com answers 451 to US hosts); theirs does not (docs/sources.md).
    spec = ProviderSpec(NAME, "market_data", 4, timeout_s=8.0, min_interval_s=10.0,
                        url_setting="binance_url", default_unblocked=True)

    async def fetch(self, http: UpstreamHttp) -> list[PriceQuote]:
        # `symbols` is a JSON array in the query string, as the endpoint documents.
        params = {"symbols": json.dumps(sorted(self.ids), separators=(",", ":"))}
        reply = await http.get(f"{self.base_url}/api/v3/ticker/24hr", params=params)
        return await parse_off_loop(parse_binance_ticker_24hr, reply.body, self.ids, rejects=self.fresh_rejects())
