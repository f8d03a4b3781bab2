"""Coinbase Exchange `/products/{id}/stats`: last price, 24 h open and volume, one product per call.

Docs: https://docs.cdp.coinbase.com/exchange/reference/exchangerestapi_getproductstats
`open` is the price 24 hours ago, so `(last - open) / open` is a true 24 h change.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import datetime
from typing import Unpack

from core.clock import utc_now
from core.records import PriceQuote

from ..errors import SourceError, UpstreamBlocked, UpstreamGarbage, UpstreamHTTPError, UpstreamRateLimited
from ..http import UpstreamHttp
from ..parsing import (
    ItemRejected,
    load_json,
    optional_change,
    optional_nonnegative,
    positive_number,
    require_mapping,
)
from ..pool import ProviderOptions, ProviderSpec
from ..symbols import SYMBOLS
from .base import MarketProvider

__all__ = ["CoinbaseProvider", "parse_coinbase_stats"]

NAME = "coinbase"


def parse_coinbase_stats(raw: bytes, symbol: str, *, now: datetime | None = None) -> PriceQuote:
    """Parse one product's `/stats` body into a quote for `symbol`.

    Raises:
        UpstreamGarbage: not the documented object, or absurd/missing numbers.
    """
    now = now or utc_now()
    body = require_mapping(load_json(raw, NAME), NAME, "product stats")
    if "message" in body and "last" not in body:
        raise UpstreamGarbage(f"{NAME}: error for {symbol}: {body.get('message')}")
    try:
        last = positive_number(body.get("last"), "last")
        open_ = positive_number(body.get("open"), "open")
        volume = optional_nonnegative(body.get("volume"), "volume")
        change = optional_change((last - open_) / open_ * 100.0, "change_24h")
    except ItemRejected as exc:
        raise UpstreamGarbage(f"{NAME}: {symbol}: {exc}") from exc
    return PriceQuote(
        symbol=symbol,
        price=last,
        source=NAME,
        timestamp=now,
        change_24h=change,
        volume_24h=volume * last if volume is not None else None,  # base units -> USD
    )


class CoinbaseProvider(MarketProvider):
    """Coinbase Exchange stats for every tracked product, a few requests at a time.

    One fetch is ~17 requests, so once a minute.

    Args:
        concurrency: requests in flight; the public limit is 10 per second per IP.
    """

    spec = ProviderSpec(NAME, "market_data", 3, timeout_s=12.0, min_interval_s=60.0, max_bytes=64_000,
                        url_setting="coinbase_url")

    def __init__(
        self, *, symbols: Iterable[str] = SYMBOLS, concurrency: int = 4, **options: Unpack[ProviderOptions]
    ) -> None:
        super().__init__(symbols=symbols, **options)
        self._limit = asyncio.Semaphore(concurrency)

    async def fetch(self, http: UpstreamHttp) -> list[PriceQuote]:
        self.last_rejects = []
        outcomes = await asyncio.gather(
            *(self._fetch_product(http, product, symbol) for product, symbol in self.ids.items()),
            return_exceptions=True,
        )
        quotes: list[PriceQuote] = []
        errors: list[BaseException] = []
        for (product, _), outcome in zip(self.ids.items(), outcomes, strict=True):
            if isinstance(outcome, PriceQuote):
                quotes.append(outcome)
            elif isinstance(outcome, UpstreamRateLimited | UpstreamBlocked):
                raise outcome  # back off as a whole; the pool honours its Retry-After or geo-block
            elif isinstance(outcome, UpstreamHTTPError) and outcome.status == 404:
                self.last_rejects.append(f"{product}: not listed (404)")  # a delisted product
            elif isinstance(outcome, SourceError):
                self.last_rejects.append(f"{product}: {outcome}")
                errors.append(outcome)
            elif isinstance(outcome, BaseException):
                raise outcome
        if not quotes:
            if errors:
                raise errors[0]
            raise UpstreamGarbage(f"{NAME}: no product answered ({'; '.join(self.last_rejects[:3])})")
        return quotes

    async def _fetch_product(self, http: UpstreamHttp, product: str, symbol: str) -> PriceQuote:
        async with self._limit:
            reply = await http.get(f"{self.base_url}/products/{product}/stats")
        return parse_coinbase_stats(reply.body, symbol)
