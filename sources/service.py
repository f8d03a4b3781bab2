"""`SourceService`: the pollers. Owns the pools, the Binance stream and their tasks; hands records to
the callbacks the app supplies. It never publishes or persists anything itself.

It is configured by `core.config.SourcesSection` (`settings.section(SourcesSection)`) and the tracked
symbols; the few values derived from them (feeds named from their URLs, the disabled set) are
derived here, where they are used.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import aclosing
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any

import httpx

from core.clock import utc_now
from core.config import SourcesSection
from core.periodic import TaskSupervisor
from core.records import FearGreedReading, NewsItem, PriceQuote, SocialPost, SourceHealth

from .dedupe import NewsDeduper
from .fear_greed import FearGreedProvider
from .fusion import QuoteBook, fuse_quote
from .http import DEFAULT_USER_AGENT
from .market import MARKET_PROVIDERS, BinanceStream
from .news import CryptoCompareNewsProvider, CryptoPanicProvider
from .pool import Category, Provider, ProviderState, SourcePool
from .rss import RssProvider, feeds_from_urls
from .social import RedditProvider, TwitterProvider, symbols_mentioned

__all__ = ["OnFearGreed", "OnNews", "OnQuotes", "OnSocial", "SourceService"]

logger = logging.getLogger(__name__)

OnQuotes = Callable[[list[PriceQuote]], Awaitable[None]]
OnNews = Callable[[list[NewsItem]], Awaitable[None]]
OnFearGreed = Callable[[FearGreedReading], Awaitable[None]]
OnSocial = Callable[[list[SocialPost], dict[str, dict[str, int]]], Awaitable[None]]

MENTION_WINDOW = timedelta(hours=24)
MAX_REMEMBERED_POSTS = 20_000
STOP_TIMEOUT_S = 5.0
# The Binance stream counts as fresh (REST Binance is skipped) while it delivered within this long.
STREAM_FRESH_S = 10.0


class SourceService:
    """Runs one loop per category and the Binance stream; calls back with fresh records.

    Args:
        settings: the source layer's section of the app's settings (`settings.section(SourcesSection)`);
            `SourcesSection()` is the public endpoints at the default intervals.
        symbols: the tracked symbols (`SYMBOLS`), each known to `sources/symbols.py`.
        on_quotes: fused quotes of the symbols that changed, as each provider answers and per
            stream batch.
        on_news: only news not delivered before (canonical URL and near-identical titles),
            oldest first, as each feed answers.
        on_fear_greed: the newest reading after every successful poll.
        on_social: posts not delivered before, and mentions per platform per symbol over the
            last 24 h of posts seen: `{"reddit": {"BTC": 12, ...}}` (only platforms that
            answered at least once).
        client: an httpx client to share; when None the service makes one and closes it on stop.
        clock: monotonic seconds for budgets and breakers (injectable for tests).

    Callbacks are awaited in the loop that produced the data: a slow callback delays that
    loop's next round (never the other loops); one that raises is logged and the loop goes on.
    """

    def __init__(
        self,
        settings: SourcesSection,
        symbols: Sequence[str],
        *,
        on_quotes: OnQuotes | None = None,
        on_news: OnNews | None = None,
        on_fear_greed: OnFearGreed | None = None,
        on_social: OnSocial | None = None,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.symbols = tuple(symbols)
        # Provider names as health shows them; the setting takes any case (`SOURCES_DISABLED=Coinbase`).
        self._disabled = frozenset(name.lower() for name in settings.sources_disabled)
        self._on_quotes = on_quotes
        self._on_news = on_news
        self._on_fear_greed = on_fear_greed
        self._on_social = on_social
        self._owns_client = client is None
        self._client = client if client is not None else self._new_client()
        self._clock = clock
        s = self.settings
        self.market: SourcePool[PriceQuote] = self._pool(
            "market_data", self._market_providers(), s.market_poll_s
        )
        self.news: SourcePool[NewsItem] = self._pool("news", self._news_providers(), s.news_poll_s)
        self.sentiment: SourcePool[FearGreedReading] = self._pool(
            "sentiment", [FearGreedProvider(**FearGreedProvider.options_from(s))], s.fng_poll_s
        )
        self.social: SourcePool[SocialPost] = self._pool("social", self._social_providers(), s.social_poll_s)
        self._stream: BinanceStream | None = None
        self._stream_state: ProviderState | None = None
        if s.binance_ws_enabled and BinanceStream.name not in self._disabled:
            self._stream = BinanceStream(url=s.binance_ws_url, symbols=self.symbols, clock=clock)
            self._stream_state = self.market.add_external(
                BinanceStream.name, priority=1, stale_after_s=max(3.0 * STREAM_FRESH_S, 30.0)
            )
        self._book = QuoteBook()
        self._latest_quotes: dict[str, PriceQuote] = {}
        self._deduper = NewsDeduper()
        self._seen_posts: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._mention_log: OrderedDict[tuple[str, str], tuple[datetime, frozenset[str]]] = OrderedDict()
        self._platforms_answered: set[str] = set()
        self._tasks = TaskSupervisor("sources", logger)

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the four poll loops and the stream; returns at once."""
        if self._tasks.tasks:
            raise RuntimeError("SourceService.start() called twice; call stop() first")
        if self._client.is_closed:
            raise RuntimeError("SourceService was stopped and its HTTP client closed; create a new SourceService")
        s = self.settings
        # A failing round is a bug (providers' failures are handled in the pool): logged, next round on time.
        self._tasks.every(s.market_poll_s, self.poll_market_once, "market")
        self._tasks.every(s.news_poll_s, self.poll_news_once, "news")
        self._tasks.every(s.fng_poll_s, self.poll_fear_greed_once, "fear_greed")
        self._tasks.every(s.social_poll_s, self.poll_social_once, "social")
        if self._stream is not None and self._stream_state is not None:
            self._tasks.spawn("binance_ws", self._stream.run(self._on_stream_quotes, self._stream_state))
        logger.info("+ sources started: %d tasks, symbols %s", len(self._tasks.tasks), ",".join(self.symbols))

    async def stop(self) -> None:
        """Cancel every task, wait for them (bounded), close the owned client.

        Raises:
            The first exception a background task crashed with, after everything stopped.
        """
        await self._tasks.cancel_all(STOP_TIMEOUT_S)
        if self._owns_client:
            await self._client.aclose()
        logger.info("- sources stopped")
        crash = self._tasks.take_crash()
        if crash is not None:
            raise crash

    async def __aenter__(self) -> SourceService:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # -- what the app reads ----------------------------------------------------------------

    @property
    def pools(self) -> Mapping[Category, SourcePool[Any]]:
        return {
            "market_data": self.market,
            "news": self.news,
            "sentiment": self.sentiment,
            "social": self.social,
        }

    def health(self) -> list[SourceHealth]:
        """Return the health of every provider in every pool."""
        return [health for pool in self.pools.values() for health in pool.health()]

    def market_is_up(self) -> bool:
        """Return whether some market provider (stream included) answered within max(3 polls, `MARKET_UP_WINDOW_S`)."""
        s = self.settings
        return self.market.any_succeeded_within(max(3.0 * s.market_poll_s, s.market_up_window_s))

    def latest_quotes(self) -> dict[str, PriceQuote]:
        """Return the last fused quote per symbol."""
        return dict(self._latest_quotes)

    def mentions(self) -> dict[str, dict[str, int]]:
        """Return mentions per platform per symbol over the last 24 h of posts seen."""
        cutoff = utc_now() - MENTION_WINDOW
        counts = {
            platform: dict.fromkeys(self.symbols, 0) for platform in sorted(self._platforms_answered)
        }
        for (platform, _), (created_at, symbols) in self._mention_log.items():
            if created_at >= cutoff and platform in counts:
                for symbol in symbols:
                    counts[platform][symbol] += 1
        return counts

    def mark_news_seen(self, urls: Iterable[str] = (), titles: Iterable[str] = ()) -> None:
        """Tell the service what was delivered before (e.g. from the store) so it is not sent again."""
        self._deduper.mark_seen(urls, titles)

    # -- one round of each loop (public so tests and the app can trigger them) -----------------

    async def poll_market_once(self) -> list[PriceQuote]:
        """Fetch every market provider whose budget allows; fuse; call `on_quotes` per arrival.

        Each provider's quotes are fused and handed on as soon as that provider answers, so a
        slow or hung upstream never holds back the fast ones.
        """
        # REST Binance is the stream's fallback: while the stream is fresh it would only
        # duplicate it and spend our IP weight.
        exclude = {"binance"} if self._stream_is_fresh() else set()
        delivered: list[PriceQuote] = []
        async with aclosing(self.market.fetch_each(exclude=exclude)) as results:
            async for result in results:
                fused = self._fuse(self._book.update(result.provider, result.records))
                if fused:
                    delivered.extend(fused)
                    await self._emit("on_quotes", self._on_quotes, fused)
        return delivered

    async def poll_news_once(self) -> list[NewsItem]:
        """Fetch every feed and news API; call `on_news` with each feed's unseen items as it lands."""
        delivered: list[NewsItem] = []
        async with aclosing(self.news.fetch_each()) as results:
            async for result in results:
                # First to arrive wins among copies of a story: news goes out as soon as it exists.
                fresh = sorted(self._deduper.filter_new(result.records), key=lambda item: item.published_at)
                if fresh:
                    delivered.extend(fresh)
                    await self._emit("on_news", self._on_news, fresh)
        return delivered

    async def poll_fear_greed_once(self) -> FearGreedReading | None:
        """Fetch the Fear & Greed index; call `on_fear_greed` with the newest reading."""
        result = await self.sentiment.fetch_first()
        if result is None or not result.records:
            return None
        reading = max(result.records, key=lambda r: r.timestamp)
        await self._emit("on_fear_greed", self._on_fear_greed, reading)
        return reading

    async def poll_social_once(self) -> list[SocialPost]:
        """Fetch social providers; call `on_social` with new posts and 24 h mention counts."""
        results = await self.social.fetch_all()
        if not results:
            return []
        fresh: list[SocialPost] = []
        for result in results:
            for post in result.records:
                self._platforms_answered.add(post.platform)
                key = (post.platform, post.post_id)
                if key in self._seen_posts:
                    continue
                self._remember(self._seen_posts, key, None)
                self._remember(
                    self._mention_log,
                    key,
                    (post.created_at, frozenset(symbols_mentioned(post.text, self.symbols))),
                )
                fresh.append(post)
        self._prune_mentions()
        fresh.sort(key=lambda post: post.created_at)
        await self._emit("on_social", self._on_social, fresh, self.mentions())
        return fresh

    # -- internals ---------------------------------------------------------------------------

    async def _on_stream_quotes(self, quotes: list[PriceQuote]) -> None:
        touched = self._book.update(BinanceStream.name, quotes)
        fused = self._fuse(touched)
        if fused:
            await self._emit("on_quotes", self._on_quotes, fused)

    def _stream_is_fresh(self) -> bool:
        state = self._stream_state
        return state is not None and state.succeeded_within(self._clock(), STREAM_FRESH_S)

    def _fuse(self, symbols: set[str]) -> list[PriceQuote]:
        if not symbols:
            return []
        health = self.market.health()
        healthy = {h.name for h in health if h.status != "inactive"}
        priorities = {h.name: h.priority for h in health}
        now = utc_now()
        fused: list[PriceQuote] = []
        for symbol in self.symbols:
            if symbol not in symbols:
                continue
            quote = fuse_quote(symbol, self._book.candidates(symbol), healthy=healthy, now=now, priorities=priorities)
            if quote is not None:
                self._latest_quotes[symbol] = quote
                fused.append(quote)
        return fused

    async def _emit(self, name: str, callback: Callable[..., Awaitable[None]] | None, *args: Any) -> None:
        if callback is None:
            return
        try:
            await callback(*args)
        except Exception:
            logger.exception("! sources %s callback failed", name)

    def _prune_mentions(self) -> None:
        cutoff = utc_now() - MENTION_WINDOW
        stale = [key for key, (created_at, _) in self._mention_log.items() if created_at < cutoff]
        for key in stale:
            del self._mention_log[key]

    @staticmethod
    def _remember(store: OrderedDict[Any, Any], key: Any, value: Any) -> None:
        store[key] = value
        while len(store) > MAX_REMEMBERED_POSTS:
            store.popitem(last=False)

    def _pool(self, category: Category, providers: list[Provider[Any]], poll_s: float) -> SourcePool[Any]:
        s = self.settings
        if s.sources_timeout_s is not None:
            for provider in providers:
                provider.timeout_s = s.sources_timeout_s
        return SourcePool(
            category,
            [p for p in providers if p.name not in self._disabled],
            client=self._client,
            clock=self._clock,
            base_backoff_s=s.sources_backoff_s,
            max_backoff_s=s.sources_max_backoff_s,
            blocked_recheck_s=s.sources_blocked_recheck_s,
            poll_interval_s=poll_s,
            budget_scale=s.sources_budget_scale,
            user_agent=s.sources_user_agent or DEFAULT_USER_AGENT,
        )

    def _market_providers(self) -> list[Provider[Any]]:
        s = self.settings
        return [cls(symbols=self.symbols, **cls.options_from(s)) for cls in MARKET_PROVIDERS]

    def _news_providers(self) -> list[Provider[Any]]:
        s = self.settings
        feeds: list[Provider[Any]] = []
        used: set[str] = set()
        for index, feed in enumerate(feeds_from_urls(s.news_feeds), start=1):
            name = feed.provider_name
            if name in used:
                name = f"{name}_{index}"  # two feeds of one publisher keep separate health
            used.add(name)
            feeds.append(RssProvider(feed, name=name, priority=index))
        keyed = [cls(**cls.options_from(s)) for cls in (CryptoPanicProvider, CryptoCompareNewsProvider)]
        return [*feeds, *keyed]

    def _social_providers(self) -> list[Provider[Any]]:
        s = self.settings
        return [
            RedditProvider(subreddits=s.reddit_subreddits, **RedditProvider.options_from(s)),
            TwitterProvider(**TwitterProvider.options_from(s)),
        ]

    def _new_client(self) -> httpx.AsyncClient:
        # Feeds move (http -> https, trailing slashes), so follow redirects; keep a small pool.
        return httpx.AsyncClient(
            follow_redirects=True,
            max_redirects=5,
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
            timeout=httpx.Timeout(10.0),
        )
