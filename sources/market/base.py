"""What every REST price provider shares: symbols and id mapping, and one way to read a quote."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypedDict, Unpack

from core.clock import utc_now
from core.records import PriceQuote

from ..parsing import (
    collect_records,
    optional_change,
    optional_nonnegative,
    positive_number,
    require_object,
    require_text,
)
from ..pool import Provider, ProviderOptions
from ..symbols import SYMBOLS, provider_ids

__all__ = ["MarketProvider", "ParseOptions", "QuoteFields", "collect_quotes", "read_quote"]


class ParseOptions(TypedDict, total=False):
    """What every quote parser accepts besides the body.

    now: the fetch time, for items that carry no time of their own (default: now).
    rejects: receives the reason for every item skipped.
    """

    now: datetime | None
    rejects: list[str] | None


class MarketProvider(Provider[PriceQuote]):
    """A provider of `PriceQuote`s for our symbols.

    Args:
        symbols: our symbols to ask for; `ids` maps the upstream's id of each one it lists
            (`bitcoin`, `XXBTZUSD`, `BTC-USD`) to ours.
        options: per-instance overrides of the class's `spec` (`ProviderOptions`).
    """

    def __init__(self, *, symbols: Iterable[str] = SYMBOLS, **options: Unpack[ProviderOptions]) -> None:
        super().__init__(**options)
        self.symbols = tuple(symbols)
        self.ids = provider_ids(self.spec.name, self.symbols)


@dataclass(frozen=True)
class QuoteFields:
    """Where an upstream puts each number of a `PriceQuote` in one item (keys of the item).

    `prefix` is how rejects name the item's path (`quotes.USD.`).
    """

    price: str
    change_24h: str | None = None
    change_7d: str | None = None
    volume_24h: str | None = None
    market_cap: str | None = None
    prefix: str = ""


def read_quote(
    item: Mapping[str, Any], fields: QuoteFields, *, symbol: str, source: str, timestamp: datetime
) -> PriceQuote:
    """Build a quote from `item`: the price > 0, changes plausible percents, volume and cap >= 0.

    Raises:
        ItemRejected: a number is missing where required, mistyped or absurd.
    """

    def value(key: str | None) -> Any:
        return item.get(key) if key is not None else None

    def label(key: str | None) -> str:
        return f"{fields.prefix}{key}"

    return PriceQuote(
        symbol=symbol,
        price=positive_number(item.get(fields.price), label(fields.price)),
        source=source,
        timestamp=timestamp,
        change_24h=optional_change(value(fields.change_24h), label(fields.change_24h)),
        change_7d=optional_change(value(fields.change_7d), label(fields.change_7d)),
        volume_24h=optional_nonnegative(value(fields.volume_24h), label(fields.volume_24h)),
        market_cap=optional_nonnegative(value(fields.market_cap), label(fields.market_cap)),
    )


def collect_quotes(
    items: list[Any],
    ids: Mapping[str, str],
    convert: Callable[[dict[str, Any], str, datetime], PriceQuote],
    *,
    source: str,
    id_field: str,
    **options: Unpack[ParseOptions],
) -> list[PriceQuote]:
    """Convert every object item whose `id_field` names a tracked coin; skip the others.

    Args:
        convert: builds the quote from the item, our symbol and the fetch time (`now`).

    Raises:
        UpstreamGarbage: not one usable quote (see `collect_records`).
    """
    stamp = options.get("now") or utc_now()

    def convert_tracked(item: Any) -> PriceQuote | None:
        item = require_object(item)
        symbol = ids.get(require_text(item.get(id_field), id_field))
        return None if symbol is None else convert(item, symbol, stamp)

    return collect_records(items, convert_tracked, name=source, label=id_field, rejects=options.get("rejects"))
