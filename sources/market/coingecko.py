"""CoinGecko `/coins/markets`: price, 24 h and 7 d change, volume and market cap (keyless).

The only keyless source of both `change_7d` and market cap for every symbol in one call.
Docs: https://docs.coingecko.com/reference/coins-markets
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from core.clock import utc_now
from core.records import PriceQuote

from ..http import UpstreamHttp
from ..parsing import (
    ItemRejected,
    collect_records,
    load_json,
    optional_change,
    optional_nonnegative,
    parse_timestamp,
    positive_number,
    require_list,
    require_text,
)
from ..pool import Provider, configured_url
from ..symbols import SYMBOLS, provider_ids

__all__ = ["DEFAULT_COINGECKO_URL", "CoinGeckoProvider", "parse_coingecko_markets"]

DEFAULT_COINGECKO_URL = "https://api.coingecko.com/api/v3"
NAME = "coingecko"


def parse_coingecko_markets(
    raw: bytes,
    ids: Mapping[str, str],
    *,
    now: datetime | None = None,
    rejects: list[str] | None = None,
) -> list[PriceQuote]:
    """Parse a `/coins/markets` body into quotes for the coins in `ids` (CoinGecko id -> symbol).

    Raises:
        UpstreamGarbage: not a JSON array, or no usable quote in it.
    """
    now = now or utc_now()
    rejects = rejects if rejects is not None else []
    items = require_list(load_json(raw, NAME), NAME, "coins/markets")
    return collect_records(items, lambda item: _quote(item, ids, now), name=NAME, label="id", rejects=rejects)


def _quote(item: Any, ids: Mapping[str, str], now: datetime) -> PriceQuote | None:
    if not isinstance(item, dict):
        raise ItemRejected(f"item is a {type(item).__name__}, expected an object")
    symbol = ids.get(require_text(item.get("id"), "id"))
    if symbol is None:
        return None
    # `*_in_currency` is what `price_change_percentage=24h,7d` adds; the bare field is the fallback.
    change_24h = item.get("price_change_percentage_24h_in_currency", item.get("price_change_percentage_24h"))
    last_updated = item.get("last_updated")
    return PriceQuote(
        symbol=symbol,
        price=positive_number(item.get("current_price"), "current_price"),
        source=NAME,
        timestamp=parse_timestamp(last_updated, "last_updated") if last_updated is not None else now,
        change_24h=optional_change(change_24h, "price_change_percentage_24h"),
        change_7d=optional_change(item.get("price_change_percentage_7d_in_currency"), "change_7d"),
        volume_24h=optional_nonnegative(item.get("total_volume"), "total_volume"),
        market_cap=optional_nonnegative(item.get("market_cap"), "market_cap"),
    )


class CoinGeckoProvider(Provider[PriceQuote]):
    """CoinGecko markets for the tracked symbols.

    Args:
        base_url: API root; default from COINGECKO_URL, else the public v3 API.
        symbols: our symbols to ask for.
        min_interval_s: keyless calls are limited per IP (roughly 5-30 a minute, shared with
            every Space on the host), so 30 s keeps us well inside it.
    """

    def __init__(
        self,
        *,
        base_url: str | None = None,
        symbols: Iterable[str] = SYMBOLS,
        priority: int = 5,
        timeout_s: float = 10.0,
        min_interval_s: float = 30.0,
    ) -> None:
        super().__init__(
            name=NAME,
            category="market_data",
            priority=priority,
            timeout_s=timeout_s,
            min_interval_s=min_interval_s,
        )
        self.base_url = configured_url(base_url, "COINGECKO_URL", DEFAULT_COINGECKO_URL)
        self.ids = provider_ids("coingecko", symbols)

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
        return parse_coingecko_markets(reply.body, self.ids, rejects=self.fresh_rejects())
