"""The sentiment board: latest Fear & Greed, scored social posts per platform, and the market mood.

Producers feed it (`accept_fear_greed`, `accept_social`); `build_message()` assembles
`sentiment_update`, where every missing value is null with the reason it is missing. Simulated
prices never feed the mood: momentum counts only when the market stream is live. Every accepted
input calls the board's listeners, so the runtime rebuilds the message at once instead of at the next tick.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from core.clock import format_utc
from core.protocol import FearGreedData, MarketMood, SentimentData, SentimentUpdateMessage, SocialSentiment
from core.records import FearGreedReading, PriceQuote, SentimentResult
from sources.market_mood import compute_market_mood, momentum_from_quotes, mood_label

__all__ = ["RECENT_SCORES", "SentimentBoard"]

PLATFORMS = ("twitter", "reddit")
RECENT_SCORES = 200  # scores of each input (news, each platform's posts) the market mood averages over


@dataclass
class _Platform:
    scores: deque[float] = field(default_factory=lambda: deque(maxlen=RECENT_SCORES))
    mentions: int | None = None
    reason: str | None = None


class SentimentBoard:
    """Holds the inputs of `sentiment_update` and builds it."""

    def __init__(
        self, *, unavailable: dict[str, str] | None = None, fear_greed_reason: str = "no Fear & Greed reading yet"
    ) -> None:
        self._listeners: list[Callable[[], None]] = []
        self.fear_greed: FearGreedReading | None = None
        self.fear_greed_reason = fear_greed_reason
        self.platforms = {name: _Platform() for name in PLATFORMS}
        for name, reason in (unavailable or {}).items():
            self.platforms[name].reason = reason

    def accept_fear_greed(self, reading: FearGreedReading) -> None:
        """Take the newest Fear & Greed reading."""
        self.fear_greed = reading
        self._changed()

    def accept_social(self, platform: str, results: Sequence[SentimentResult], mentions: int | None) -> None:
        """Take the scores of newly seen posts and the platform's mention count."""
        slot = self.platforms[platform]
        slot.scores.extend(r.score for r in results)
        if mentions is not None:
            slot.mentions = mentions
        slot.reason = None
        self._changed()

    def add_listener(self, callback: Callable[[], None]) -> None:
        """Call `callback` after every accepted input."""
        self._listeners.append(callback)

    def _changed(self) -> None:
        for callback in self._listeners:
            callback()

    def _social(self, name: str) -> SocialSentiment:
        slot = self.platforms[name]
        if not slot.scores:
            return SocialSentiment(sentiment=None, score=None, mentions=slot.mentions,
                                   reason=slot.reason or "no posts scored yet")
        mean = sum(slot.scores) / len(slot.scores)
        label = mood_label(mean)
        # `score` is documented in [0, 1] (0.5 neutral); the mean P(bull)-P(bear) maps onto it linearly.
        return SocialSentiment(sentiment=label, score=round((mean + 1) / 2, 4), mentions=slot.mentions)

    def build_message(
        self, *, news_scores: Sequence[float], quotes: Callable[[], list[PriceQuote]], prices_are_live: bool
    ) -> SentimentUpdateMessage:
        """Assemble `sentiment_update` from what is known now."""
        if self.fear_greed is not None:
            reading = self.fear_greed
            fear_greed = FearGreedData(value=reading.value, classification=reading.classification,
                                       timestamp=format_utc(reading.timestamp), source=reading.source)
        else:
            fear_greed = FearGreedData(value=None, classification=None, timestamp=None, reason=self.fear_greed_reason)
        social_scores = [s for slot in self.platforms.values() for s in slot.scores]
        momentum = momentum_from_quotes(quotes()) if prices_are_live else None
        mood = compute_market_mood(
            fear_greed=self.fear_greed.value if self.fear_greed else None,
            momentum_pct=momentum,
            news_scores=list(news_scores),
            social_scores=social_scores,
        )
        reason = mood.reason
        if not prices_are_live:
            note = "momentum left out: prices are simulated"
            reason = f"{reason}; {note}" if reason else note
        market = MarketMood(
            overall=mood.overall,
            confidence=mood.confidence if mood.overall is not None else None,
            reason=reason,
            inputs=dict(mood.signals),
        )
        return SentimentUpdateMessage(
            data=SentimentData(fear_greed=fear_greed, social={n: self._social(n) for n in PLATFORMS}, market=market)
        )
