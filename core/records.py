"""Typed records that travel inside the process, between sources, inference and the bus.

Providers return these; they never publish themselves. Wire messages (pydantic) live in
`core/protocol.py`; these frozen dataclasses are the in-process currency.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

__all__ = [
    "FearGreedReading",
    "NewsItem",
    "SIMULATOR_SOURCE",
    "PriceQuote",
    "SentimentLabel",
    "SentimentResult",
    "SocialPost",
    "SourceHealth",
]

SentimentLabel = Literal["bearish", "neutral", "bullish"]

# The `source` of every simulated price: the label that tells demo data from market data everywhere.
SIMULATOR_SOURCE = "simulator"


@dataclass(frozen=True)
class PriceQuote:
    """One provider's view of one symbol at one moment (USD)."""

    symbol: str
    price: float
    source: str
    timestamp: datetime
    change_24h: float | None = None
    change_7d: float | None = None
    volume_24h: float | None = None
    market_cap: float | None = None


@dataclass(frozen=True)
class NewsItem:
    """A news article, before or after scoring."""

    title: str
    description: str
    url: str
    source: str
    published_at: datetime
    image_url: str | None = None
    sentiment: Literal["positive", "negative", "neutral"] | None = None
    sentiment_score: float | None = None
    sentiment_model: str | None = None


@dataclass(frozen=True)
class FearGreedReading:
    """The alternative.me Fear & Greed index value for one day."""

    value: int
    classification: str
    timestamp: datetime
    source: str = "alternative.me"


@dataclass(frozen=True)
class SocialPost:
    """A post from a social platform (reddit, twitter) to be scored."""

    platform: Literal["reddit", "twitter"]
    post_id: str
    text: str
    created_at: datetime
    community: str | None = None
    url: str | None = None


@dataclass(frozen=True)
class SentimentResult:
    """One text's sentiment: probabilities over bearish/neutral/bullish from one model or the ensemble."""

    label: SentimentLabel
    score: float  # P(bullish) - P(bearish), in [-1, 1]
    confidence: float  # probability of the chosen label
    probs: dict[str, float] = field(default_factory=dict)
    model: str = ""


@dataclass(frozen=True)
class SourceHealth:
    """What `system_status.data_sources.sources[]` says about one provider."""

    name: str
    category: Literal["market_data", "news", "sentiment", "social"]
    status: Literal["active", "degraded", "inactive"]
    priority: int = 0
    last_success: datetime | None = None
    last_error: str | None = None
    latency_ms: float | None = None
    reason: str | None = None
