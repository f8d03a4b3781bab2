"""The news desk: the one path every news item takes, from an upstream feed or the ingest endpoint.

dedupe by URL -> score with the inference layer -> persist -> publish on the `news` topic.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, deque
from dataclasses import replace
from typing import Literal, Protocol

from core.bus import Bus
from core.clock import format_utc
from core.protocol import NewsData, NewsMessage
from core.records import NewsItem, SentimentResult
from core.store import Store, StoreUnavailable

__all__ = ["NewsDesk", "Scorer", "news_message", "news_sentiment"]

logger = logging.getLogger(__name__)

RECENT_SCORES = 200  # news scores the market mood averages over


class Scorer(Protocol):
    """What the desk needs from the inference layer."""

    async def score(self, texts: list[str], domain: Literal["news", "social"] = "news") -> list[SentimentResult]: ...


def news_sentiment(result: SentimentResult) -> Literal["positive", "negative", "neutral"]:
    """Map a bearish/neutral/bullish label to the documented news wording."""
    return {"bullish": "positive", "bearish": "negative"}.get(result.label, "neutral")  # type: ignore[return-value]


def news_message(item: NewsItem) -> NewsMessage:
    """Build the `news` message of one (scored) item."""
    return NewsMessage(
        data=NewsData(
            title=item.title,
            description=item.description,
            url=item.url,
            source=item.source,
            published_at=format_utc(item.published_at),
            sentiment=item.sentiment,
            sentiment_score=item.sentiment_score,
            image_url=item.image_url,
            sentiment_model=item.sentiment_model,
        )
    )


class NewsDesk:
    """Dedupes, scores, persists and publishes news items."""

    def __init__(self, bus: Bus, store: Store | None, scorer: Scorer | None, *, memory: int = 5000) -> None:
        self.bus = bus
        self.store = store
        self.scorer = scorer
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._memory = memory
        self._lock = asyncio.Lock()
        self.recent_scores: deque[float] = deque(maxlen=RECENT_SCORES)  # for the market mood

    def _stored_urls(self, urls: list[str]) -> set[str]:
        """Return which of `urls` the store holds (runs in a thread: a locked database must not stall the loop)."""
        if self.store is None or not self.store.online:
            return set()
        try:
            return {url for url in urls if self.store.has_news(url)}
        except Exception:  # the store being down must not stop news
            logger.exception("news: dedupe lookup failed; relying on memory")
            return set()

    def _remember(self, url: str) -> None:
        self._seen[url] = None
        while len(self._seen) > self._memory:
            self._seen.popitem(last=False)

    async def ingest(self, items: list[NewsItem]) -> list[tuple[NewsItem, int | None]]:
        """Publish the items not seen before; return each item with its `seq` (None when a duplicate)."""
        async with self._lock:  # one batch at a time keeps seq order equal to arrival order
            unseen = [item.url for item in items if item.url not in self._seen]
            stored = await asyncio.to_thread(self._stored_urls, unseen) if unseen else set()
            fresh: dict[str, NewsItem] = {}
            for item in items:
                if item.url not in fresh and item.url not in self._seen and item.url not in stored:
                    fresh[item.url] = item
            scored = await self._score(list(fresh.values()))
            seqs: dict[str, int] = {}
            for item in scored:
                envelope = self.bus.publish(
                    "news", news_message(item), match_text=f"{item.title} {item.description}", source=item.source
                )
                self._remember(item.url)
                seqs[item.url] = envelope.seq
                if item.sentiment_score is not None:
                    self.recent_scores.append(item.sentiment_score)
                # Let socket writers run between items: a large feed batch must not look like a slow reader.
                await asyncio.sleep(0)
        # Persist after publishing and outside the lock: a slow disk must not hold up the next item.
        if self.store is not None and scored:
            await asyncio.to_thread(self._persist, [(item, seqs[item.url]) for item in scored])
        by_url = {item.url: item for item in scored}
        # Answer in input order; a repeated URL gets None after its first occurrence.
        return [(by_url.pop(item.url), seqs[item.url]) if item.url in by_url else (item, None) for item in items]

    def _persist(self, items: list[tuple[NewsItem, int]]) -> None:
        assert self.store is not None
        for item, seq in items:
            try:
                self.store.save_news(item, seq)
            except StoreUnavailable as exc:
                logger.error("news: not persisted (%s): %s", exc, item.url)

    async def _score(self, items: list[NewsItem]) -> list[NewsItem]:
        if not items or self.scorer is None:
            return items
        texts = [f"{item.title}. {item.description}".strip()[:2000] for item in items]
        try:
            results = await self.scorer.score(texts, "news")
        except Exception:
            logger.exception("news: scoring failed; publishing %d items unscored", len(items))
            return items
        return [
            replace(item, sentiment=news_sentiment(r), sentiment_score=round(r.score, 4), sentiment_model=r.model)
            for item, r in zip(items, results, strict=True)
        ]
