"""Binance spot: REST `/api/v3/ticker/24hr` and the `!miniTicker@arr` stream's message format.

Symbols are USDT pairs (`BTCUSDT`); `quoteVolume` (in USDT) is our USD volume.
Docs: https://developers.binance.com/docs/binance-spot-api-docs/rest-api/market-data-endpoints
and .../web-socket-streams (All Market Mini Tickers Stream).

From US-hosted machines api.binance.com answers HTTP 451; the market-data-only mirrors
`https://data-api.binance.vision` and `wss://data-stream.binance.vision` serve the same
formats (set BINANCE_URL / BINANCE_WS_URL).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from core.clock import utc_now
from core.records import PriceQuote

from ..errors import UpstreamGarbage
from ..http import UpstreamHttp
from ..parsing import (
    ItemRejected,
    collect_items,
    collect_records,
    load_json,
    optional_change,
    optional_nonnegative,
    parse_epoch,
    positive_number,
    require_list,
    require_text,
)
from ..pool import Provider, configured_url
from ..symbols import SYMBOLS, provider_ids

__all__ = [
    "DEFAULT_BINANCE_URL",
    "DEFAULT_BINANCE_WS_URL",
    "BinanceProvider",
    "parse_binance_mini_tickers",
    "parse_binance_ticker_24hr",
]

DEFAULT_BINANCE_URL = "https://api.binance.com"
DEFAULT_BINANCE_WS_URL = "wss://stream.binance.com:9443/ws/!miniTicker@arr"
NAME = "binance"


def parse_binance_ticker_24hr(
    raw: bytes,
    ids: Mapping[str, str],
    *,
    now: datetime | None = None,
    rejects: list[str] | None = None,
) -> list[PriceQuote]:
    """Parse a `/api/v3/ticker/24hr` array into quotes for the pairs in `ids` (BTCUSDT -> BTC).

    Raises:
        UpstreamGarbage: an error object, not an array, or no usable ticker.
    """
    now = now or utc_now()
    rejects = rejects if rejects is not None else []
    body = load_json(raw, NAME)
    if isinstance(body, dict) and "code" in body:
        # Binance reports errors as {"code": -1121, "msg": "Invalid symbol."}.
        raise UpstreamGarbage(f"{NAME}: error {body.get('code')}: {body.get('msg')}")
    items = require_list(body, NAME, "ticker/24hr")
    return collect_records(
        items, lambda item: _rest_quote(item, ids, now), name=NAME, label="symbol", rejects=rejects
    )


def _rest_quote(item: Any, ids: Mapping[str, str], now: datetime) -> PriceQuote | None:
    if not isinstance(item, dict):
        raise ItemRejected(f"item is a {type(item).__name__}, expected an object")
    symbol = ids.get(require_text(item.get("symbol"), "symbol"))
    if symbol is None:
        return None
    close_time = item.get("closeTime")
    return PriceQuote(
        symbol=symbol,
        price=positive_number(item.get("lastPrice"), "lastPrice"),
        source=NAME,
        timestamp=parse_epoch(close_time, "closeTime", millis=True) if close_time is not None else now,
        change_24h=optional_change(item.get("priceChangePercent"), "priceChangePercent"),
        volume_24h=optional_nonnegative(item.get("quoteVolume"), "quoteVolume"),
    )


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
    if not isinstance(item, dict):
        raise ItemRejected(f"item is a {type(item).__name__}, expected an object")
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


class BinanceProvider(Provider[PriceQuote]):
    """Binance REST 24 h tickers; the fallback while the stream is down.

    Args:
        base_url: API root; default from BINANCE_URL, else https://api.binance.com.
        min_interval_s: the call weighs 2-40 of the 6000-per-minute IP budget, so 10 s is cheap.
    """

    def __init__(
        self,
        *,
        base_url: str | None = None,
        symbols: Iterable[str] = SYMBOLS,
        priority: int = 2,
        timeout_s: float = 8.0,
        min_interval_s: float = 10.0,
    ) -> None:
        super().__init__(
            name=NAME,
            category="market_data",
            priority=priority,
            timeout_s=timeout_s,
            min_interval_s=min_interval_s,
        )
        self.base_url = configured_url(base_url, "BINANCE_URL", DEFAULT_BINANCE_URL)
        self.ids = provider_ids("binance", symbols)

    async def fetch(self, http: UpstreamHttp) -> list[PriceQuote]:
        # `symbols` is a JSON array in the query string, as the endpoint documents.
        params = {"symbols": json.dumps(sorted(self.ids), separators=(",", ":"))}
        reply = await http.get(f"{self.base_url}/api/v3/ticker/24hr", params=params)
        return parse_binance_ticker_24hr(reply.body, self.ids, rejects=self.fresh_rejects())
