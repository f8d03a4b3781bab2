"""Live feeds: runs the source service and routes what it fetches into the desks and the store.

quotes -> market desk; news -> news desk (dedupe, score, persist, publish); Fear & Greed ->
sentiment board + store; social posts -> scored -> sentiment board. It runs only where the
producers run (the leader, with REDIS_URL).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

from core.config import SourcesSection
from core.records import FearGreedReading, NewsItem, PriceQuote, SocialPost, SourceHealth
from core.store import Store, StoreUnavailable
from desk.market import MarketDesk
from desk.news import NewsDesk, NewsUnavailable, Scorer
from desk.sentiment import SentimentBoard
from sources import SourceService

__all__ = ["LiveFeeds"]

logger = logging.getLogger(__name__)

SEED_SEEN_NEWS = 1000  # stored URLs/titles handed to the deduper at start, so a restart republishes nothing
PENDING_HEALTH_EVENTS = 1000  # status changes waiting to be stored; the oldest go first if the store is down


class LiveFeeds:
    """Owns one `SourceService` at a time (a service cannot restart, so each `start()` builds a new one).

    Args:
        settings: the sources' section of the settings, handed to each `SourceService`.
        symbols: the tracked symbols.
        store: where Fear & Greed readings and provider status changes are kept, and stored news read.
        market, news, sentiment: the desks fed with quotes, news, and Fear & Greed and social scores.
        scorer: scores social posts (None with inference off: posts are then counted, not scored).
    """

    def __init__(
        self, settings: SourcesSection, *, symbols: Sequence[str], store: Store, market: MarketDesk,
        news: NewsDesk, sentiment: SentimentBoard, scorer: Scorer | None,
    ) -> None:
        self.settings = settings
        self.symbols = tuple(symbols)
        self.store = store
        self.market = market
        self.news = news
        self.sentiment = sentiment
        self.scorer = scorer
        self.sources: SourceService | None = None
        self._last_status: dict[str, str] = {}
        self._pending_events: deque[SourceHealth] = deque(maxlen=PENDING_HEALTH_EVENTS)
        if not settings.twitter_bearer_token:
            sentiment.platforms["twitter"].reason = "TWITTER_BEARER_TOKEN not set"

    async def start(self) -> None:
        """Build and start a fresh source service; seed its deduper with stored news."""
        self.sources = sources = SourceService(
            self.settings,
            self.symbols,
            on_quotes=self._on_quotes,
            on_news=self._on_news,
            on_fear_greed=self._on_fear_greed,
            on_social=self._on_social,
        )
        if self.store.online:
            try:
                stored = await asyncio.to_thread(self.store.recent_news, None, SEED_SEEN_NEWS)
                sources.mark_news_seen([n["url"] for n in stored], [n["title"] for n in stored])
            except Exception:
                logger.exception("feeds: could not read stored news for dedupe; relying on the store's URL check")
        self.market.live_is_up = sources.market_is_up
        await sources.start()

    async def stop(self) -> None:
        """Stop the source service (logging a background crash rather than raising it at shutdown)."""
        sources, self.sources = self.sources, None
        if sources is not None:
            try:
                await sources.stop()
            except Exception:
                logger.exception("feeds: a source task had crashed")

    @property
    def pools(self) -> Mapping[Any, Any]:
        """The running service's provider pools by category (their fetch counts feed /metrics)."""
        return self.sources.pools if self.sources is not None else {}

    def health(self) -> list[SourceHealth]:
        """Return every provider's health; status changes wait for `store_health_events`."""
        if self.sources is None:
            return []
        health = self.sources.health()
        for h in health:
            if self._last_status.get(h.name) != h.status:
                self._last_status[h.name] = h.status
                self._pending_events.append(h)
        return health

    async def store_health_events(self) -> None:
        """Store the status changes seen since the last call, in a thread (a slow database must not stall the loop)."""
        events = list(self._pending_events)
        self._pending_events.clear()
        if events:
            await asyncio.to_thread(self._store_events, events)

    def _store_events(self, events: list[SourceHealth]) -> None:
        for h in events:
            try:
                self.store.save_source_event(h.name, h.category, h.status, h.last_error, h.latency_ms)
            except StoreUnavailable as exc:
                logger.error("feeds: health event of %s not stored: %s", h.name, exc)

    async def _on_quotes(self, quotes: list[PriceQuote]) -> None:
        self.market.accept_quotes(quotes)

    async def _on_news(self, items: list[NewsItem]) -> None:
        try:
            await self.news.ingest(items)
        except NewsUnavailable as exc:
            # Nothing past the failing item was published; the status shows the journal's error.
            logger.error("feeds: %d news items not published: %s", len(items), exc)

    async def _on_fear_greed(self, reading: FearGreedReading) -> None:
        self.sentiment.accept_fear_greed(reading)
        try:
            await asyncio.to_thread(self.store.save_fear_greed, reading)
        except StoreUnavailable as exc:
            logger.error("feeds: Fear & Greed reading not stored: %s", exc)

    async def _on_social(self, posts: list[SocialPost], mentions: dict[str, dict[str, int]]) -> None:
        board, scorer = self.sentiment, self.scorer
        by_platform: dict[str, list[SocialPost]] = {}
        for post in posts:
            by_platform.setdefault(post.platform, []).append(post)
        for platform in set(by_platform) | set(mentions):
            batch = by_platform.get(platform, [])
            results = []
            if batch and scorer is not None:
                try:
                    results = await scorer.score([p.text[:2000] for p in batch], "social")
                except Exception:
                    logger.exception("feeds: scoring %d %s posts failed", len(batch), platform)
            count = sum(mentions.get(platform, {}).values()) if platform in mentions else None
            if platform in board.platforms:
                board.accept_social(platform, results, count)
                if batch and scorer is None:
                    board.platforms[platform].reason = "posts fetched but not scored: inference is off"
