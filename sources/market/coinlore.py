"""CoinLore `/api/tickers/`: price, market cap, 24 h and 7 d change for the top coins (keyless).

Docs: https://www.coinlore.com/cryptocurrency-data-api
Numbers come as strings (`"price_usd": "6456.52"`), `volume24` as a number.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from core.clock import utc_now
from core.records import PriceQuote

from ..http import UpstreamHttp
from ..parsing import ItemRejected, collect_records, load_json_object, parse_epoch, parse_off_loop, require_list
from ..pool import ProviderSpec
from ..symbols import asset_for, provider_ids
from .base import MarketProvider, QuoteFields, read_quote

__all__ = ["CoinLoreProvider", "parse_coinlore_tickers"]

NAME = "coinlore"

FIELDS = QuoteFields("price_usd", "percent_change_24h", "percent_change_7d", "volume24", "market_cap_usd")


def parse_coinlore_tickers(
    raw: bytes, symbols: Iterable[str], *, now: datetime | None = None, rejects: list[str] | None = None
) -> list[PriceQuote]:
    """Parse a `/tickers/` body into quotes for `symbols`.

    Coins are matched by CoinLore id where `symbols.py` knows it, else by ticker symbol at the
    best rank (the list is rank-ordered, so an imposter token with the same ticker loses).

    Raises:
        UpstreamGarbage: not the documented `{"data": [...]}` shape, or no usable coin.
    """
    wanted = [asset_for(symbol).symbol for symbol in symbols]
    by_id = provider_ids("coinlore", wanted)
    by_symbol = {symbol for symbol in wanted if symbol not in by_id.values()}
    body = load_json_object(raw, NAME, "tickers response")
    items = require_list(body.get("data"), NAME, "`data`")
    info = body.get("info")
    stamp = now or utc_now()
    if now is None and isinstance(info, dict) and info.get("time") is not None:
        try:
            stamp = parse_epoch(info["time"], "info.time")
        except ItemRejected:
            pass  # fall back to the fetch time; `info` is metadata, not a quote
    claimed: set[str] = set()

    def convert(item: Any) -> PriceQuote | None:
        symbol = _match(item, by_id, by_symbol)
        # The first (best-ranked) match claims the symbol, even when rejected, so a lower-ranked
        # token with the same ticker never stands in for it.
        if symbol is None or symbol in claimed:
            return None
        claimed.add(symbol)
        return _quote(item, symbol, stamp)

    return collect_records(items, convert, name=NAME, label="symbol", rejects=rejects)


def _match(item: Any, by_id: Mapping[str, str], by_symbol: set[str]) -> str | None:
    if not isinstance(item, dict):
        return None
    symbol = by_id.get(str(item.get("id", "")))
    if symbol is not None:
        return symbol
    ticker = item.get("symbol")
    return ticker if isinstance(ticker, str) and ticker in by_symbol else None


def _quote(item: dict[str, Any], symbol: str, stamp: datetime) -> PriceQuote:
    return read_quote(item, FIELDS, symbol=symbol, source=NAME, timestamp=stamp)


class CoinLoreProvider(MarketProvider):
    """CoinLore's top-100 tickers, filtered to ours; the third aggregator.

    CoinLore asks for no more than one call a second; data refreshes about every 5 minutes, so
    once a minute is plenty.
    """

    spec = ProviderSpec(NAME, "market_data", 7, timeout_s=10.0, min_interval_s=60.0,
                        url_setting="coinlore_url")

    async def fetch(self, http: UpstreamHttp) -> list[PriceQuote]:
        reply = await http.get(f"{self.base_url}/tickers/", params={"start": "0", "limit": "100"})
        return await parse_off_loop(parse_coinlore_tickers, reply.body, self.symbols, rejects=self.fresh_rejects())
