"""Live feeds: runs the source hub and routes what it fetches into the desks and the store.

quotes -> market desk; news -> news desk (dedupe, score, persist, publish); Fear & Greed ->
sentiment board + store; social posts -> scored -> sentiment board. It runs only where the
producers run (the leader, with REDIS_URL).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING

from core.config import SourcesSection
from core.records import FearGreedReading, NewsItem, PriceQuote, SocialPost, SourceHealth
from core.store import StoreUnavailable
from desk.news import NewsUnavailable
from sources import SourceService

if TYPE_CHECKING:
    from desk.runtime import Runtime

__all__ = ["LiveFeeds"]

logger = logging.getLogger(__name__)

SEED_SEEN_NEWS = 1000  # stored URLs/titles handed to the deduper at start, so a restart republishes nothing
PENDING_HEALTH_EVENTS = 1000  # status changes waiting to be stored; the oldest go first if the store is down


class LiveFeeds:
    """Owns one `SourceService` at a time (a hub cannot restart, so each `start()` builds a new one)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.settings = runtime.settings.section(SourcesSection)
        self.hub: SourceService | None = None
        self._last_status: dict[str, str] = {}
        self._pending_events: deque[SourceHealth] = deque(maxlen=PENDING_HEALTH_EVENTS)
        if not self.settings.twitter_bearer_token:
            runtime.sentiment.platforms["twitter"].reason = "TWITTER_BEARER_TOKEN not set"

    async def start(self) -> None:
        """Build and start a fresh hub; seed its deduper with stored news."""
        self.hub = SourceService(
            self.settings,
            self.runtime.settings.symbols,
            on_quotes=self._on_quotes,
            on_news=self._on_news,
            on_fear_greed=self._on_fear_greed,
            on_social=self._on_social,
        )
        store = self.runtime.store
        if store.online:
            try:
                stored = await asyncio.to_thread(store.recent_news, None, SEED_SEEN_NEWS)
                self.hub.mark_news_seen([n["url"] for n in stored], [n["title"] for n in stored])
            except Exception:
                logger.exception("feeds: could not read stored news for dedupe; relying on the store's URL check")
        self.runtime.market.live_is_up = self.hub.market_is_up
        await self.hub.start()

    async def stop(self) -> None:
        """Stop the hub (logging a background crash rather than raising it at shutdown)."""
        hub, self.hub = self.hub, None
        if hub is not None:
            try:
                await hub.stop()
            except Exception:
                logger.exception("feeds: a source task had crashed")

    def health(self) -> list[SourceHealth]:
        """Return every provider's health; status changes wait for `store_health_events`."""
        if self.hub is None:
            return []
        health = self.hub.health()
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
                self.runtime.store.save_source_event(h.name, h.category, h.status, h.last_error, h.latency_ms)
            except StoreUnavailable as exc:
                logger.error("feeds: health event of %s not stored: %s", h.name, exc)

    async def _on_quotes(self, quotes: list[PriceQuote]) -> None:
        self.runtime.market.accept_quotes(quotes)

    async def _on_news(self, items: list[NewsItem]) -> None:
        try:
            await self.runtime.news.ingest(items)
        except NewsUnavailable as exc:
            # Nothing past the failing item was published; the status shows the journal's error.
            logger.error("feeds: %d news items not published: %s", len(items), exc)

    async def _on_fear_greed(self, reading: FearGreedReading) -> None:
        self.runtime.sentiment.accept_fear_greed(reading)
        try:
            await asyncio.to_thread(self.runtime.store.save_fear_greed, reading)
        except StoreUnavailable as exc:
            logger.error("feeds: Fear & Greed reading not stored: %s", exc)

    async def _on_social(self, posts: list[SocialPost], mentions: dict[str, dict[str, int]]) -> None:
        board, scorer = self.runtime.sentiment, self.runtime.inference
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
