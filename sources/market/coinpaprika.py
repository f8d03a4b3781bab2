"""CoinPaprika `/v1/tickers`: price, market cap, 24 h and 7 d change for every listed coin.

Docs: https://api.coinpaprika.com/#tag/Tickers/operation/getTickers
One call returns ~2,500 coins (a few MB), and the free plan allows 20-25k calls a month, so it
is polled rarely and serves as the second aggregator behind CoinGecko.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Unpack

from core.records import PriceQuote

from ..http import UpstreamHttp
from ..parsing import ItemRejected, load_json_list, parse_off_loop, parse_timestamp
from ..pool import ProviderSpec
from .base import MarketProvider, ParseOptions, QuoteFields, collect_quotes, read_quote

__all__ = ["CoinPaprikaProvider", "parse_coinpaprika_tickers"]

NAME = "coinpaprika"

# CoinPaprika nests the numbers per currency; we ask for USD only.
USD_FIELDS = QuoteFields("price", "percent_change_24h", "percent_change_7d", "volume_24h", "market_cap", "quotes.USD.")


def parse_coinpaprika_tickers(raw: bytes, ids: Mapping[str, str], **options: Unpack[ParseOptions]) -> list[PriceQuote]:
    """Parse a `/tickers` array (every listed coin) into quotes for ours (btc-bitcoin -> BTC).

    Raises:
        UpstreamGarbage: not an array, or none of our coins usable in it.
    """
    return collect_quotes(load_json_list(raw, NAME, "tickers"), ids, _quote, source=NAME, id_field="id", **options)


def _quote(item: dict[str, Any], symbol: str, now: datetime) -> PriceQuote:
    quotes = item.get("quotes")
    usd = quotes.get("USD") if isinstance(quotes, dict) else None
    if not isinstance(usd, dict):
        raise ItemRejected(f"quotes.USD is {usd!r}, expected an object")
    last_updated = item.get("last_updated")
    stamp = parse_timestamp(last_updated, "last_updated") if last_updated is not None else now
    return read_quote(usd, USD_FIELDS, symbol=symbol, source=NAME, timestamp=stamp)


class CoinPaprikaProvider(MarketProvider):
    """CoinPaprika tickers (all coins, filtered to ours).

    A 150 s budget stays under the free plan's ~800 calls a day.
    """

    spec = ProviderSpec(NAME, "market_data", 6, timeout_s=20.0, min_interval_s=150.0, max_bytes=16_000_000,
                        url_setting="coinpaprika_url")

    async def fetch(self, http: UpstreamHttp) -> list[PriceQuote]:
        reply = await http.get(f"{self.base_url}/tickers", params={"quotes": "USD"})
        # Up to 16 MB: parsed in the parse thread, not on the loop that serves the sockets.
        return await parse_off_loop(parse_coinpaprika_tickers, reply.body, self.ids, rejects=self.fresh_rejects())
