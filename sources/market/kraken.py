"""Kraken public `Ticker`: last trade price and 24 h volume (XBT naming: `XXBTZUSD`).

Docs: https://docs.kraken.com/api/docs/rest-api/get-ticker-information
Kraken's `o` is today's opening price (since 00:00 UTC), not a rolling 24 h open, so we report
no `change_24h` rather than a mislabelled one.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from core.clock import utc_now
from core.records import PriceQuote

from ..errors import SourceUnavailable, UpstreamGarbage, UpstreamRateLimited
from ..http import UpstreamHttp
from ..parsing import (
    ItemRejected,
    collect_records,
    load_json_object,
    optional_nonnegative,
    positive_number,
    require_mapping,
    require_object,
)
from ..pool import ProviderSpec
from .base import MarketProvider

__all__ = ["KrakenProvider", "parse_kraken_ticker"]

NAME = "kraken"


def parse_kraken_ticker(
    raw: bytes, pairs: Mapping[str, str], *, now: datetime | None = None, rejects: list[str] | None = None
) -> list[PriceQuote]:
    """Parse a `/0/public/Ticker` body into quotes for `pairs` (result key -> symbol).

    Raises:
        UpstreamRateLimited: Kraken's in-body "Too many requests" error.
        SourceUnavailable: any other error Kraken reports in `error`.
        UpstreamGarbage: not the documented shape, or no usable ticker.
    """
    stamp = now or utc_now()
    body = load_json_object(raw, NAME, "Ticker response")
    errors = body.get("error")
    if not isinstance(errors, list):
        raise UpstreamGarbage(f"{NAME}: expected an `error` array, got {type(errors).__name__}")
    if errors:
        text = "; ".join(str(error) for error in errors)
        # Kraken answers rate limiting with HTTP 200 and an error string, not a 429.
        if "Too many requests" in text or "Rate limit" in text:
            raise UpstreamRateLimited(None)
        raise SourceUnavailable(f"{NAME}: upstream reported {text}")
    result = require_mapping(body.get("result"), NAME, "`result`")

    def convert(entry: tuple[str, Any]) -> PriceQuote | None:
        key, item = entry
        symbol = pairs.get(key)
        return None if symbol is None else _quote(symbol, item, stamp)

    return collect_records(result.items(), convert, name=NAME, label=lambda entry: entry[0], rejects=rejects)


def _quote(symbol: str, item: Any, now: datetime) -> PriceQuote:
    item = require_object(item, "ticker")
    price = positive_number(_first(item, "c", 0), "c[0]")
    volume_base = optional_nonnegative(_first(item, "v", 1), "v[1]")  # [today, last 24 hours]
    vwap = optional_nonnegative(_first(item, "p", 1), "p[1]")
    return PriceQuote(
        symbol=symbol,
        price=price,
        source=NAME,
        timestamp=now,
        # Base-currency volume times the 24 h volume-weighted price is the USD turnover.
        volume_24h=volume_base * vwap if volume_base is not None and vwap is not None else None,
    )


def _first(item: dict[str, Any], field: str, index: int) -> Any:
    values = item.get(field)
    if not isinstance(values, list) or len(values) <= index:
        raise ItemRejected(f"{field} is {values!r}, expected an array with index {index}")
    return values[index]


class KrakenProvider(MarketProvider):
    """Kraken tickers for the tracked symbols Kraken lists.

    Public endpoints allow about one call per second; a 15 s budget is polite.
    """

    spec = ProviderSpec(NAME, "market_data", 2, timeout_s=8.0, min_interval_s=15.0,
                        url_setting="kraken_url")

    async def fetch(self, http: UpstreamHttp) -> list[PriceQuote]:
        reply = await http.get(f"{self.base_url}/0/public/Ticker", params={"pair": ",".join(self.ids)})
        return parse_kraken_ticker(reply.body, self.ids, rejects=self.fresh_rejects())
