"""The news desk: the one path every news item takes, from an upstream feed or the ingest endpoint.

dedupe by URL -> score with the inference layer -> (cluster: backplane confirms) -> commit the item
and its journal entry in one transaction -> fan out on the `news` topic -> acknowledge. See docs/bus.md.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Literal, Protocol, TypeVar

from core.bus import AlreadyPublished, Bus, Envelope, PublishedNotStored
from core.clock import format_utc, parse_utc
from core.protocol import NewsData, NewsMessage
from core.records import NewsItem, SentimentResult
from core.store import Store, StoreUnavailable
from desk.sentiment import RECENT_SCORES

__all__ = ["Ingested", "NewsDesk", "NewsUnavailable", "Scorer", "news_item", "news_message", "news_sentiment",
           "scored_by"]

logger = logging.getLogger(__name__)

_A = TypeVar("_A")
_R = TypeVar("_R")


class Scorer(Protocol):
    """What the desk needs from the inference layer.

    With `deadline=True` it answers within its news deadline, from the models that were done by
    then: news never waits long for a slow model.
    """

    async def score(
        self, texts: list[str], domain: Literal["news", "social"] = "news", *, deadline: bool = False
    ) -> list[SentimentResult]: ...


def scored_by(sentiment_model: str | None) -> list[str]:
    """Return the models behind a score: `ensemble(a+b)` -> [a, b], a model id -> [it], none -> []."""
    if not sentiment_model:
        return []
    if sentiment_model.startswith("ensemble(") and sentiment_model.endswith(")"):
        return sentiment_model[len("ensemble(") : -1].split("+")
    return [sentiment_model]


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
            scored_by=scored_by(item.sentiment_model),
        )
    )


def news_item(envelope: Envelope) -> NewsItem:
    """Rebuild the item a `news` envelope carries (what another process published).

    Raises:
        ValueError: the envelope's text is not a news message.
        TypeError: its data has fields a NewsItem lacks (the wire format moved on).
    """
    data = NewsMessage.model_validate_json(envelope.text).data.model_dump()
    data.pop("scored_by", None)  # derived from sentiment_model, not kept on the item
    return NewsItem(**{**data, "published_at": parse_utc(data["published_at"])})


class NewsUnavailable(Exception):
    """News cannot be acknowledged now (journal or backplane down); nothing was published. Retry later.

    Args:
        retry_after_s: when a retry has a chance (the `Retry-After` of the 503).
    """

    def __init__(self, message: str, retry_after_s: float = 2.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class Ingested:
    """What became of one offered item: its seq, and whether it had been published before."""

    item: NewsItem
    seq: int | None
    duplicate: bool


class NewsDesk:
    """Dedupes, scores, persists and publishes news items; an item is acknowledged once durable.

    Args:
        retry_after_s: after a commit failed, refuse at once (503) for this long instead of
            making every request wait for a locked database again.
    """

    def __init__(
        self, bus: Bus, store: Store | None, scorer: Scorer | None, *, memory: int = 5000, retry_after_s: float = 1.0
    ) -> None:
        self.bus = bus
        self.store = store
        self.scorer = scorer
        self._seen: OrderedDict[str, int | None] = OrderedDict()  # url -> seq, published and stored
        self._unstored: OrderedDict[str, tuple[NewsItem, Envelope]] = OrderedDict()  # published, not stored
        self._memory = memory
        self._lock = asyncio.Lock()
        self.retry_after_s = retry_after_s
        self._refuse_until = 0.0
        self.refused = 0
        self.recent_scores: deque[float] = deque(maxlen=RECENT_SCORES)  # for the market mood
        # The dedupe lookup and the commit run on a thread of their own: on the loop's default pool
        # they would queue behind whatever else runs there (the UI's reads, anyone's requests).
        # One thread is enough: they run under the lock, one at a time.
        self._commit_thread = ThreadPoolExecutor(1, thread_name_prefix="news-commit")

    def _stored_seqs(self, urls: list[str]) -> dict[str, int | None]:
        """Return url -> seq of the stored ones among `urls` (runs in a thread: the database may be slow)."""
        if self.store is None:
            return {}
        try:  # even while `online` is false: reads still work while another program holds the write lock
            return self.store.stored_news_seqs(urls)
        except Exception:  # the store being down must not stop news
            logger.exception("news: dedupe lookup failed; relying on memory")
            return {}

    def _remember(self, url: str, seq: int | None) -> None:
        self._seen[url] = seq
        while len(self._seen) > self._memory:
            self._seen.popitem(last=False)

    async def ingest(self, items: list[NewsItem]) -> list[Ingested]:
        """Publish the items not seen before, each only once it is durable; return what became of each.

        An item seen before answers with its original seq (`duplicate=True`), so a client that
        retries after a lost answer or a 503 gets the same result.

        Raises:
            NewsUnavailable: an item could not be made durable; the ones before it in `items`
                are published (a retry answers them as duplicates), it and the rest are not.
        """
        async with self._lock:  # one item at a time keeps seq order equal to arrival order
            unseen = [item.url for item in items if item.url not in self._seen]
            stored = await self._on_commit_thread(self._stored_seqs, unseen) if unseen else {}
            known = {item.url: self._seen[item.url] for item in items if item.url in self._seen} | stored
            fresh: dict[str, NewsItem] = {}
            for item in items:
                if item.url not in fresh and item.url not in known:
                    fresh[item.url] = item
            published: dict[str, NewsItem] = {}
            try:
                for url in [url for url in fresh if url in self._unstored]:
                    known[url] = await self._store_published(url)
                    del fresh[url]
                for item in await self._score(list(fresh.values())):
                    known[item.url], went_out_now = await self._publish(item)
                    if not went_out_now:
                        continue  # the backplane had it already, under its original seq
                    published[item.url] = item
                    if item.sentiment_score is not None:
                        self.recent_scores.append(item.sentiment_score)
            except NewsUnavailable:
                self.refused += 1
                raise
        out = []
        for item in items:
            if item.url in published:
                out.append(Ingested(published.pop(item.url), known[item.url], duplicate=False))
            else:  # seen before, or repeated within this batch
                out.append(Ingested(item, known.get(item.url), duplicate=True))
        return out

    async def _on_commit_thread(self, fn: Callable[[_A], _R], arg: _A) -> _R:
        return await asyncio.get_running_loop().run_in_executor(self._commit_thread, fn, arg)

    def _check_not_refusing(self) -> None:
        left = self._refuse_until - time.monotonic()
        if left > 0:
            reason = self.store.journal_error if self.store is not None else None
            raise NewsUnavailable(f"news cannot be stored now ({reason or 'journal failing'}); retry shortly",
                                  retry_after_s=max(1.0, left))

    def _commit(self, item: NewsItem) -> Callable[[Envelope], None]:
        store = self.store

        def commit(envelope: Envelope) -> None:
            if store is not None:
                store.commit_news(item, envelope)

        return commit

    async def _publish(self, item: NewsItem) -> tuple[int, bool]:
        """Publish one item once durable; return its seq and False when it had gone out before."""
        self._check_not_refusing()
        publishing = self.bus.publish_durable(
            "news", news_message(item), self._commit(item),
            match_text=f"{item.title} {item.description}", source=item.source, dedupe_key=item.url,
            executor=self._commit_thread,
        )
        try:
            # Shielded: a client hanging up must not stop an item between its commit and its fan-out.
            envelope = await asyncio.shield(publishing)
        except AlreadyPublished as exc:
            # A retry whose first try went out (its answer was lost): the seq it went out as.
            self._remember(item.url, exc.seq)
            return exc.seq, False
        except PublishedNotStored as exc:
            # The backplane has it (other processes stream it): a retry stores it under the same seq.
            self._unstored[item.url] = (item, exc.envelope)
            while len(self._unstored) > self._memory:
                self._unstored.popitem(last=False)
            self._refuse_until = time.monotonic() + self.retry_after_s
            raise NewsUnavailable(f"news published but not stored yet ({exc}); retry to store it") from exc
        except StoreUnavailable as exc:
            self._refuse_until = time.monotonic() + self.retry_after_s
            logger.error("news: not published, the journal cannot write: %s (%s)", exc, item.url)
            raise NewsUnavailable(f"news cannot be stored now ({exc}); nothing was published") from exc
        except Exception as exc:
            logger.warning("news: not published, the backplane did not confirm it: %s (%s)", exc, item.url)
            raise NewsUnavailable(f"the backplane did not confirm the item ({exc}); retry shortly") from exc
        self._remember(item.url, envelope.seq)
        return envelope.seq, True

    async def _store_published(self, url: str) -> int:
        """Store an item the backplane published while the database was failing (a client's retry)."""
        self._check_not_refusing()
        item, envelope = self._unstored[url]
        try:
            await self._on_commit_thread(self._commit(item), envelope)
        except StoreUnavailable as exc:
            self._refuse_until = time.monotonic() + self.retry_after_s
            raise NewsUnavailable(f"news published but still not stored ({exc}); retry shortly") from exc
        del self._unstored[url]
        self._remember(url, envelope.seq)
        return envelope.seq

    async def _score(self, items: list[NewsItem]) -> list[NewsItem]:
        if not items or self.scorer is None:
            return items
        texts = [f"{item.title}. {item.description}".strip()[:2000] for item in items]
        try:
            results = await self.scorer.score(texts, "news", deadline=True)
        except Exception:
            logger.exception("news: scoring failed; publishing %d items unscored", len(items))
            return items
        return [
            replace(item, sentiment=news_sentiment(r), sentiment_score=round(r.score, 4), sentiment_model=r.model)
            for item, r in zip(items, results, strict=True)
        ]
