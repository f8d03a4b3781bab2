"""Builds `sentiment_update` from the latest Fear & Greed reading, social scores and the market mood."""

from __future__ import annotations

from typing import Any

from core.clock import format_utc
from ws.protocol import FearGreedData, MarketMood, SentimentData, SentimentUpdateMessage, SocialSentiment

__all__ = ["build_sentiment_update"]


def build_sentiment_update(runtime: Any) -> SentimentUpdateMessage:
    """Assemble the message; every missing value is null with the reason it is missing."""
    sources = runtime.sources
    reading = sources.latest_fear_greed() if sources is not None else None
    if reading is not None:
        fear_greed = FearGreedData(value=reading.value, classification=reading.classification,
                                   timestamp=format_utc(reading.timestamp), source=reading.source)
    else:
        reason = "live sources are off (DATA_MODE=demo)" if sources is None else "no Fear & Greed reading yet"
        fear_greed = FearGreedData(value=None, classification=None, timestamp=None, reason=reason)
    social: dict[str, SocialSentiment] = {}
    for platform in ("twitter", "reddit"):
        entry = sources.social_sentiment(platform) if sources is not None else None
        social[platform] = entry or SocialSentiment(sentiment=None, score=None, mentions=None,
                                                    reason="live sources are off" if sources is None
                                                    else "no posts scored yet")
    mood = sources.market_mood(runtime) if sources is not None else None
    if mood is None:
        mood = MarketMood(overall=None, confidence=None, reason="no sentiment inputs available yet")
    return SentimentUpdateMessage(
        data=SentimentData(fear_greed=fear_greed, social=social, market=mood),
    )
