"""alternative.me Fear & Greed index: `/fng/?limit=N`.

Docs: https://alternative.me/crypto/fear-and-greed-index/#api
The index is published once a day; polling every 10 minutes catches the new value promptly.
"""

from __future__ import annotations

from typing import Unpack

from core.records import FearGreedReading

from .errors import SourceUnavailable, UpstreamGarbage
from .http import UpstreamHttp
from .parsing import ItemRejected, load_json, parse_epoch, require_list, require_mapping, require_text
from .pool import Provider, ProviderOptions, ProviderSpec

__all__ = ["FearGreedProvider", "parse_fear_greed"]

NAME = "alternative.me"


def parse_fear_greed(raw: bytes, *, rejects: list[str] | None = None) -> list[FearGreedReading]:
    """Parse a `/fng/` body into readings, newest first.

    Raises:
        SourceUnavailable: `metadata.error` is set.
        UpstreamGarbage: not the documented shape, or no usable reading.
    """
    rejects = rejects if rejects is not None else []
    body = require_mapping(load_json(raw, NAME), NAME, "fng response")
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and metadata.get("error"):
        raise SourceUnavailable(f"{NAME}: upstream reported {metadata['error']}")
    data = require_list(body.get("data"), NAME, "`data`")
    readings: list[FearGreedReading] = []
    for entry in data:
        try:
            if not isinstance(entry, dict):
                raise ItemRejected(f"entry is a {type(entry).__name__}, expected an object")
            readings.append(
                FearGreedReading(
                    value=_index_value(entry.get("value")),
                    classification=require_text(entry.get("value_classification"), "value_classification"),
                    timestamp=parse_epoch(entry.get("timestamp"), "timestamp"),
                )
            )
        except ItemRejected as exc:
            rejects.append(f"{entry.get('timestamp', '?') if isinstance(entry, dict) else '?'}: {exc}")
    if not readings:
        if not data:
            raise UpstreamGarbage(f"{NAME}: expected at least one reading, got an empty `data`")
        raise UpstreamGarbage(f"{NAME}: 0 of {len(data)} readings usable ({'; '.join(rejects[:3])})")
    return sorted(readings, key=lambda reading: reading.timestamp, reverse=True)


def _index_value(value: object) -> int:
    # The API sends the value as a string ("40"); it is an integer 0..100 by definition.
    if isinstance(value, bool):
        raise ItemRejected(f"value is {value!r}, expected an integer 0..100")
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ItemRejected(f"value is {value!r}, expected an integer 0..100") from None
    if not 0 <= number <= 100:
        raise ItemRejected(f"value is {number}, expected 0..100")
    return number


class FearGreedProvider(Provider[FearGreedReading]):
    """The Fear & Greed index, latest `limit` days.

    The value changes daily; 5 minutes between calls is generous.

    Args:
        limit: days of history per call (1 is enough for the live value).
    """

    spec = ProviderSpec(NAME, "sentiment", 1, timeout_s=10.0, min_interval_s=300.0, max_bytes=500_000,
                        url_setting="fng_url")

    def __init__(self, *, limit: int = 1, **options: Unpack[ProviderOptions]) -> None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit!r}")
        super().__init__(**options)
        self.limit = limit

    async def fetch(self, http: UpstreamHttp) -> list[FearGreedReading]:
        reply = await http.get(f"{self.base_url}/fng/", params={"limit": str(self.limit), "format": "json"})
        return parse_fear_greed(reply.body, rejects=self.fresh_rejects())
