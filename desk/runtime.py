"""The running system: owns every background task of one app process and the status it reports.

The composition root (`compose.py`) builds the components and hands them in; `app.py`'s lifespan
calls `start()` and `stop()`. Producers publish to the bus; nothing here talks to a socket directly.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from core.bus import Bus, Envelope
from core.client_watch import ClientWatch
from core.clock import format_utc
from core.config import ServerSection, StorageSection
from core.counters import RequestCounter
from core.data_place import DataPlace
from core.gcwatch import GcWatch
from core.periodic import TaskSupervisor
from core.protocol import DatabaseSection, SystemStatusMessage
from core.records import SIMULATOR_SOURCE, SourceHealth
from core.store import Store, StoreUnavailable
from core.version import VERSION
from desk.market import MarketDesk
from desk.news import NewsDesk
from desk.sentiment import SentimentBoard
from desk.status import (
    FreshStatus,
    build_models_status,
    build_system_status,
    clients_section,
    data_sources_section,
)

if TYPE_CHECKING:
    from desk.cluster import Cluster
    from desk.live_feeds import LiveFeeds
    from inference import InferenceService

__all__ = ["Runtime"]

logger = logging.getLogger(__name__)

PRICE_PERSIST_S = 10.0
# After an input of `sentiment_update` changes, wait this long so a burst (one feed batch of news,
# several platforms' posts) becomes one update instead of dozens.
SENTIMENT_SETTLE_S = 0.2
# REST reads get their own threads: anonymous queries then wait behind each other, never in front
# of news ingestion's dedupe lookup or the journal in the shared default pool.
REST_QUERY_THREADS = 2

T = TypeVar("T")


class Runtime:
    """The tasks that drive one app process's components, and the `system_status` it reports.

    Args:
        server: cadences, data mode and symbols (the settings' server section).
        storage: price retention (the settings' storage section).
        store, bus: persistence and the message bus.
        market, news, sentiment: the desks the producers tick and the sentiment update reads.
        inference: the models (None with ENABLE_INFERENCE=0); started and stopped here.
        feeds: the live sources (None in demo mode or with ENABLE_SOURCES=0); run while producing.
        data_place, counter, client_watch, gc_watch: what `system_status` and `/metrics` report.
        open_connections: how many sockets the transport holds open now.
        join_cluster: builds this process's cluster membership (with REDIS_URL), handed the producer
            switch and the status builder it calls back; None runs the producers here at start.
    """

    def __init__(
        self,
        server: ServerSection,
        storage: StorageSection,
        *,
        store: Store,
        bus: Bus,
        market: MarketDesk,
        news: NewsDesk,
        sentiment: SentimentBoard,
        inference: InferenceService | None,
        feeds: LiveFeeds | None,
        data_place: DataPlace,
        counter: RequestCounter,
        client_watch: ClientWatch,
        gc_watch: GcWatch,
        open_connections: Callable[[], int],
        join_cluster: Callable[[Runtime], Cluster] | None = None,
    ) -> None:
        self.server = server
        self.storage = storage
        self.started_monotonic = time.monotonic()
        self.store = store
        self.bus = bus
        self.market = market
        self.news = news
        self.sentiment = sentiment
        self.inference = inference
        self.feeds = feeds
        self.data_place = data_place
        self.counter = counter
        self.client_watch = client_watch
        self.gc_watch = gc_watch
        self.open_connections = open_connections
        self.event_loop: str | None = None  # the running loop's module ("uvloop" or "asyncio...")
        self._sentiment_changed: asyncio.Event | None = None  # made by the loop that waits on it
        self._last_sentiment: Any = None  # data of the last published sentiment_update
        sentiment.add_listener(self.mark_sentiment_changed)
        bus.add_listener("news", lambda _envelope: self.mark_sentiment_changed())
        self._seed_news_scores()
        # What a monitoring client gets on connect: built then, not the last periodic one (desk/status.py).
        self._fresh_status = FreshStatus(self.build_system_status, bus)
        self._producers = TaskSupervisor("runtime", logger)
        self._rest_queries = ThreadPoolExecutor(max_workers=REST_QUERY_THREADS, thread_name_prefix="rest-query")
        self._last_price_persist = 0.0
        self._persisting: asyncio.Task[None] | None = None
        self._producing = False
        self.running = False
        self.cluster = join_cluster(self) if join_cluster is not None else None

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start every producer (with REDIS_URL: once elected leader); returns at once."""
        self.running = True
        self.event_loop = type(asyncio.get_running_loop()).__module__
        self.gc_watch.install()
        if self.inference is not None:
            await self.inference.start()  # models load in the background; lexicon answers meanwhile
        if self.cluster is None:
            await self.start_producers()
        else:
            await self.cluster.start()

    async def start_producers(self) -> None:
        """Start the producer tasks: always without REDIS_URL, on the elected leader with it."""
        if self._producing:
            return
        self._producing = True
        self._producers.crashes.clear()  # a new term as producer starts with a clean slate
        s = self.server
        if self.feeds is not None:
            await self.feeds.start()
        self._producers.every(s.price_interval_s, self._tick_market, "market")
        self._producers.every(s.status_interval_s, self.publish_system_status, "system-status")
        self._producers.every(s.models_interval_s, self.publish_models_status, "models-status")
        self._producers.spawn("sentiment", self._publish_sentiment_loop())
        self._producers.every(self.storage.price_prune_interval_s, self.maintain_prices, "price-retention")
        logger.info("runtime: started (data mode %s, %d symbols)", s.data_mode, len(s.symbols))

    async def stop_producers(self) -> None:
        """Cancel the producer tasks (this process is not the leader any more, or is stopping)."""
        if not self._producing:
            return  # a leader stepping down while shutting down asks twice
        self._producing = False
        await self._producers.cancel_all()
        if self.feeds is not None:
            await self.feeds.stop()

    async def stop(self) -> None:
        """Cancel every task, re-raising nothing but logging what crashed; close services and the store."""
        self.running = False
        if self.cluster is not None:
            await self.cluster.stop()  # hands leadership over at once instead of after the lock's TTL
        await self.stop_producers()
        await self._fresh_status.close()
        if self._persisting is not None:
            await asyncio.gather(self._persisting, return_exceptions=True)
        for service in (self.inference,):
            if service is not None:
                try:
                    await service.stop()
                except Exception:
                    logger.exception("runtime: %s did not stop cleanly", type(service).__name__)
        self._rest_queries.shutdown(wait=False, cancel_futures=True)
        await asyncio.to_thread(self.store.close)  # waits (bounded) for the journal thread
        self.gc_watch.uninstall()
        logger.info("runtime: stopped")

    @property
    def agent_running(self) -> bool:
        """Whether every producer task is alive (measured, not assumed)."""
        return self.running and self._producers.all_alive

    # ------------------------------------------------------------ producers

    async def _tick_market(self) -> None:
        quotes = await self.market.tick_in_turns()
        now = time.monotonic()
        if (quotes and now - self._last_price_persist >= PRICE_PERSIST_S and self.store.online
                and self._persisting is None):
            # In the background: a locked or slow database must never hold up the price stream.
            self._last_price_persist = now
            self._persisting = asyncio.create_task(self._persist_quotes(quotes), name="persist-prices")

    async def _persist_quotes(self, quotes: list[Any]) -> None:
        try:
            await asyncio.to_thread(self.store.save_quotes, quotes)
        except StoreUnavailable as exc:
            logger.error("market: prices not persisted: %s", exc)
        except Exception:
            logger.exception("market: persisting %d prices failed", len(quotes))
        finally:
            self._persisting = None

    async def query_store(self, read: Callable[..., T], *args: Any) -> T:
        """Run one REST request's store read on the REST threads."""
        return await asyncio.get_running_loop().run_in_executor(self._rest_queries, functools.partial(read, *args))

    async def maintain_prices(self) -> None:
        """Fold points stored before rollups existed into them, then apply the retention (in threads)."""
        if not self.store.online:
            return
        try:
            while self.running and not await asyncio.to_thread(self.store.backfill_rollups):
                pass  # one short transaction per chunk; the loop and other writers run in between
            s = self.storage
            deleted = await asyncio.to_thread(
                self.store.prune_prices, s.price_retention_days, s.price_1m_retention_days,
                should_stop=lambda: not self.running,
            )
        except StoreUnavailable as exc:
            logger.error("market: price retention skipped: %s", exc)
            return
        if any(deleted.values()):
            logger.info("market: retention deleted %s raw points and %s 1m buckets",
                        deleted["prices"], deleted["rollups_1m"])

    def source_health(self) -> list[SourceHealth]:
        """Return every data source's health, the simulator included."""
        simulating = self.market.simulated
        health = [
            SourceHealth(
                name=SIMULATOR_SOURCE,
                category="market_data",
                status="active" if simulating else "inactive",
                priority=99,
                reason="labelled simulated prices" if simulating else "live providers are answering",
            )
        ]
        if self.feeds is not None:
            health.extend(self.feeds.health())
        if self.cluster is not None:
            health.append(self.cluster.health())
        return health

    def models(self) -> list[dict[str, Any]]:
        """Return the inference layer's model descriptions (empty without one)."""
        return list(self.inference.describe_models()) if self.inference is not None else []

    async def database_section(self) -> DatabaseSection:
        """Check the database for real and describe the result (a journal that cannot write is offline)."""
        reachable = await asyncio.to_thread(self.store.ping)
        journal_error = self.store.journal_error
        online = reachable and journal_error is None  # news acknowledgements need the journal
        return DatabaseSection(
            online=online,
            last_check=format_utc(self.store.last_check) if self.store.last_check else None,
            ai_models_db=reachable,  # model statistics live in the same database
            main_db=online,
            error=self.store.last_error or journal_error,
            storage=self.data_place.storage,
            data_dir=str(self.data_place.path),
            storage_reason=self.data_place.reason,
        )

    async def publish_system_status(self) -> None:
        """Publish one `system_status`, then store the provider status changes it saw (in a thread)."""
        self.bus.publish("system", await self.build_system_status())
        if self.feeds is not None:
            await self.feeds.store_health_events()

    async def build_system_status(self) -> SystemStatusMessage:
        """Build one `system_status` from this process's view."""
        return build_system_status(
            models=self.models(),
            sources=data_sources_section(self.source_health(), self.server.data_mode, self.market.simulated),
            database=await self.database_section(),
            requests_last_minute=self.counter.last_minute(),
            requests_last_hour=self.counter.last_hour(),
            connections=self.open_connections(),
            uptime_s=time.monotonic() - self.started_monotonic,
            agent_running=self.agent_running,
            version=VERSION,
            clients=clients_section(self.client_watch.view()),
        )

    async def fresh_system_status(self) -> Envelope | None:
        """Return a `system_status` built now for a connecting client (None when none came in time)."""
        return await self._fresh_status.envelope()

    async def publish_models_status(self) -> None:
        """Publish one `models_status`."""
        self.bus.publish("models", build_models_status(self.models()))

    async def publish_sentiment(self, *, only_if_changed: bool = False) -> None:
        """Publish one `sentiment_update` (with `only_if_changed`, none when its data is as last published)."""
        message = self.sentiment.build_message(
            news_scores=self.news.recent_scores,
            quotes=self.market.current_quotes,
            prices_are_live=not self.market.simulated,
        )
        if only_if_changed and message.data == self._last_sentiment:
            return
        self._last_sentiment = message.data
        self.bus.publish("sentiment", message)

    async def _publish_sentiment_loop(self) -> None:
        """Publish `sentiment_update` every SENTIMENT_INTERVAL_S, and soon after one of its inputs changes.

        Inputs are Fear & Greed, social scores (the board's listeners) and news scores (a `news`
        listener), so a new client never gets a snapshot that misses a value the process already has.
        """
        interval = self.server.sentiment_interval_s
        changed = False
        self._sentiment_changed = wake = asyncio.Event()
        while True:
            wake.clear()
            try:
                await self.publish_sentiment(only_if_changed=changed)
            except Exception:
                logger.exception("runtime: sentiment failed; retrying next tick")
            try:
                await asyncio.wait_for(wake.wait(), interval)
                changed = True
                await asyncio.sleep(SENTIMENT_SETTLE_S)
            except TimeoutError:
                changed = False

    def mark_sentiment_changed(self) -> None:
        """Have the sentiment loop publish soon: one of the update's inputs changed."""
        # News: the desk appends the item's score right after publishing; the loop reads it after SETTLE_S.
        if self._sentiment_changed is not None:
            self._sentiment_changed.set()

    def _seed_news_scores(self) -> None:
        """Start the mood's news input from the journaled history, so a restart does not forget scored news."""
        keep = self.news.recent_scores.maxlen or 0
        for env in self.bus.history("news")[-keep:] if keep else ():
            try:
                score = json.loads(env.text)["data"].get("sentiment_score")
            except (ValueError, KeyError, TypeError, AttributeError):
                continue
            if isinstance(score, int | float):
                self.news.recent_scores.append(float(score))
