"""CoinPaprika `/v1/tickers`: price, market cap, 24 h and 7 d change for every listed coin.

Docs: https://api.coinpaprika.com/#tag/Tickers/operation/getTickers
One call returns ~2,500 coins (a few MB), and the free plan allows 20-25k calls a month, so it
is polled rarely and serves as the second aggregator behind CoinGecko.
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

__all__ = ["DEFAULT_COINPAPRIKA_URL", "CoinPaprikaProvider", "parse_coinpaprika_tickers"]

DEFAULT_COINPAPRIKA_URL = "https://api.coinpaprika.com/v1"
NAME = "coinpaprika"


def parse_coinpaprika_tickers(
    raw: bytes,
    ids: Mapping[str, str],
    *,
    now: datetime | None = None,
    rejects: list[str] | None = None,
) -> list[PriceQuote]:
    """Parse a `/tickers` array into quotes for the coins in `ids` (btc-bitcoin -> BTC).

    Raises:
        UpstreamGarbage: not an array, or none of our coins usable in it.
    """
    now = now or utc_now()
    rejects = rejects if rejects is not None else []
    items = require_list(load_json(raw, NAME), NAME, "tickers")
    return collect_records(items, lambda item: _quote(item, ids, now), name=NAME, label="id", rejects=rejects)


def _quote(item: Any, ids: Mapping[str, str], now: datetime) -> PriceQuote | None:
    if not isinstance(item, dict):
        raise ItemRejected(f"item is a {type(item).__name__}, expected an object")
    symbol = ids.get(require_text(item.get("id"), "id"))
    if symbol is None:
        return None
    quotes = item.get("quotes")
    usd = quotes.get("USD") if isinstance(quotes, dict) else None
    if not isinstance(usd, dict):
        raise ItemRejected(f"quotes.USD is {usd!r}, expected an object")
    last_updated = item.get("last_updated")
    return PriceQuote(
        symbol=symbol,
        price=positive_number(usd.get("price"), "quotes.USD.price"),
        source=NAME,
        timestamp=parse_timestamp(last_updated, "last_updated") if last_updated is not None else now,
        change_24h=optional_change(usd.get("percent_change_24h"), "percent_change_24h"),
        change_7d=optional_change(usd.get("percent_change_7d"), "percent_change_7d"),
        volume_24h=optional_nonnegative(usd.get("volume_24h"), "volume_24h"),
        market_cap=optional_nonnegative(usd.get("market_cap"), "market_cap"),
    )


class CoinPaprikaProvider(Provider[PriceQuote]):
    """CoinPaprika tickers (all coins, filtered to ours).

    Args:
        base_url: API root; default from COINPAPRIKA_URL, else https://api.coinpaprika.com/v1.
        min_interval_s: 150 s stays under the free plan's ~800 calls a day.
    """

    def __init__(
        self,
        *,
        base_url: str | None = None,
        symbols: Iterable[str] = SYMBOLS,
        priority: int = 6,
        timeout_s: float = 20.0,
        min_interval_s: float = 150.0,
    ) -> None:
        super().__init__(
            name=NAME,
            category="market_data",
            priority=priority,
            timeout_s=timeout_s,
            min_interval_s=min_interval_s,
            max_bytes=16_000_000,
        )
        self.base_url = configured_url(base_url, "COINPAPRIKA_URL", DEFAULT_COINPAPRIKA_URL)
        self.ids = provider_ids("coinpaprika", symbols)

    async def fetch(self, http: UpstreamHttp) -> list[PriceQuote]:
        reply = await http.get(f"{self.base_url}/tickers", params={"quotes": "USD"})
        return parse_coinpaprika_tickers(reply.body, self.ids, rejects=self.fresh_rejects())
