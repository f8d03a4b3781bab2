"""The running system: builds every component from Settings and owns every background task.

`app.py`'s lifespan calls `start()` and `stop()`. Producers publish to the bus; nothing here talks
to a socket directly.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from core.bus import Bus
from core.clock import format_utc
from core.config import Settings
from core.counters import RequestCounter
from core.market import MarketDesk
from core.news_relay import ClusterNewsDesk
from core.records import SourceHealth
from core.sentiment import SentimentBoard
from core.status import build_models_status, build_system_status, data_sources_section
from core.store import Store, StoreUnavailable
from sources.simulator import SIMULATOR_SOURCE, MarketSimulator
from ws.limits import ConnectionLimiter
from ws.protocol import DatabaseSection, SystemStatusMessage
from ws.session import SocketHub

__all__ = ["VERSION", "Runtime"]

logger = logging.getLogger(__name__)

VERSION = "0.1.0"
PRICE_PERSIST_S = 10.0


class Runtime:
    """Every long-lived component of one app process, and the tasks that drive them."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.started_monotonic = time.monotonic()
        self.store = Store(settings.database_url, settings.data_dir)
        self.bus = Bus(history_size=settings.history_size, journal=self.store if self.store.online else None)
        self.counter = RequestCounter()
        self.sockets = SocketHub(
            bus=self.bus,
            settings=settings,
            symbols=frozenset(settings.symbols),
            counter=self.counter,
            limiter=ConnectionLimiter(settings.max_connections, settings.max_connections_per_ip),
        )
        overrides = MarketSimulator.parse_overrides(settings.extra.get("SIMULATOR_PRICES", ""))
        self.simulator = MarketSimulator(settings.symbols, seed=settings.simulator_seed, start_prices=overrides)
        self.market = MarketDesk(self.bus, settings.symbols, settings.data_mode, self.simulator)
        self.inference: Any = None
        if settings.enable_inference:
            self.inference = _build_inference(settings, self.store)
        self.sources: Any = None
        # A plain NewsDesk until a cluster attaches it; then followers forward ingestion to the leader.
        self.news = ClusterNewsDesk(self.bus, self.store, scorer=self.inference)
        self.sentiment = SentimentBoard()
        if settings.data_mode == "demo" or not settings.enable_sources:
            self.sentiment.fear_greed_reason = "live sources are off (DATA_MODE=demo or ENABLE_SOURCES=0)"
        if settings.enable_sources and settings.data_mode != "demo":
            from core.feeds import LiveFeeds

            self.sources = LiveFeeds(self)
        self._tasks: set[asyncio.Task[None]] = set()
        self._last_price_persist = 0.0
        self._persisting: asyncio.Task[None] | None = None
        self._producing = False
        self.running = False
        self.cluster: Any = None
        if settings.redis_url:
            from core.cluster import Cluster

            self.cluster = Cluster(
                settings.redis_url, self.bus, self.news,
                start_producers=self.start_producers, stop_producers=self.stop_producers,
                build_status=self.build_system_status, prefix=settings.redis_prefix,
                history_size=settings.history_size, status_interval_s=settings.status_interval_s,
                lock_ttl_s=settings.leader_lock_ttl_s,
            )

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start every producer (with REDIS_URL: once elected leader); returns at once."""
        self.running = True
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
        s = self.settings
        if self.sources is not None:
            await self.sources.start()
        self._every(s.price_interval_s, self._tick_market, "market")
        self._every(s.status_interval_s, self.publish_system_status, "system-status")
        self._every(s.models_interval_s, self.publish_models_status, "models-status")
        self._every(s.sentiment_interval_s, self.publish_sentiment, "sentiment")
        logger.info("runtime: started (data mode %s, %d symbols)", s.data_mode, len(s.symbols))

    async def stop_producers(self) -> None:
        """Cancel the producer tasks (this process is not the leader any more, or is stopping)."""
        if not self._producing:
            return  # a leader stepping down while shutting down asks twice
        self._producing = False
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self.sources is not None:
            await self.sources.stop()

    async def stop(self) -> None:
        """Cancel every task, re-raising nothing but logging what crashed; close services and the store."""
        self.running = False
        if self.cluster is not None:
            await self.cluster.stop()  # hands leadership over at once instead of after the lock's TTL
        await self.stop_producers()
        if self._persisting is not None:
            await asyncio.gather(self._persisting, return_exceptions=True)
        for service in (self.inference,):
            if service is not None:
                try:
                    await service.stop()
                except Exception:
                    logger.exception("runtime: %s did not stop cleanly", type(service).__name__)
        self.store.close()
        logger.info("runtime: stopped")

    def _every(self, interval_s: float, job: Callable[[], Awaitable[None]], name: str) -> None:
        async def loop() -> None:
            # Fixed deadlines, so lateness does not accumulate: a 1 s cadence stays 60 ticks a minute.
            next_at = time.monotonic()
            while True:
                try:
                    await job()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    logger.exception("runtime: %s failed; retrying next tick", name)
                next_at += interval_s
                now = time.monotonic()
                if next_at < now:  # overran a whole period: skip the missed ticks rather than burst
                    next_at = now
                await asyncio.sleep(next_at - now)

        task = asyncio.create_task(loop(), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def agent_running(self) -> bool:
        """Whether every producer task is alive (measured, not assumed)."""
        return self.running and bool(self._tasks) and all(not t.done() for t in self._tasks)

    # ------------------------------------------------------------ producers

    async def _tick_market(self) -> None:
        quotes = self.market.tick()
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
        finally:
            self._persisting = None

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
        if self.sources is not None:
            health.extend(self.sources.health())
        if self.cluster is not None:
            health.append(self.cluster.health())
        return health

    def models(self) -> list[dict[str, Any]]:
        """Return the inference layer's model descriptions (empty without one)."""
        return list(self.inference.describe_models()) if self.inference is not None else []

    async def database_section(self) -> DatabaseSection:
        """Check the database for real and describe the result."""
        online = await asyncio.to_thread(self.store.ping)
        return DatabaseSection(
            online=online,
            last_check=format_utc(self.store.last_check) if self.store.last_check else None,
            ai_models_db=online,  # model statistics live in the same database
            main_db=online,
            error=self.store.last_error,
        )

    async def publish_system_status(self) -> None:
        """Publish one `system_status`."""
        self.bus.publish("system", await self.build_system_status())

    async def build_system_status(self) -> SystemStatusMessage:
        """Build one `system_status` from this process's view."""
        return build_system_status(
            models=self.models(),
            sources=data_sources_section(self.source_health(), self.settings.data_mode, self.market.simulated),
            database=await self.database_section(),
            requests_last_minute=self.counter.last_minute(),
            requests_last_hour=self.counter.last_hour(),
            connections=len(self.sockets.sessions),
            uptime_s=time.monotonic() - self.started_monotonic,
            agent_running=self.agent_running,
            version=VERSION,
        )

    async def publish_models_status(self) -> None:
        """Publish one `models_status`."""
        self.bus.publish("models", build_models_status(self.models()))

    async def publish_sentiment(self) -> None:
        """Publish one `sentiment_update`."""
        message = self.sentiment.build_message(
            news_scores=self.news.recent_scores,
            quotes=self.market.current_quotes,
            prices_are_live=not self.market.simulated,
        )
        self.bus.publish("sentiment", message)


class _ModelStatsInStore:
    """Model statistics persisted in the app's database (the inference layer's StatsStore protocol)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def load(self) -> dict[str, dict[str, Any]]:
        return self.store.load_model_stats() if self.store.online else {}

    def save(self, data: dict[str, dict[str, Any]]) -> None:
        try:
            self.store.save_model_stats(data)
        except Exception:
            logger.exception("inference: statistics not persisted")


def _build_inference(settings: Settings, store: Store) -> Any:
    # Imported here: torch and transformers take seconds to import, and ENABLE_INFERENCE=0 skips them.
    from inference import InferenceService

    return InferenceService(
        list(settings.models) if settings.models else None,
        device=settings.device,
        data_dir=None,
        model_dir=settings.model_dir,
        precision=settings.inference_precision,
        runtime_dir=settings.data_dir,
        evalset=settings.inference_evalset,
        exclude_variants=settings.inference_exclude,
        cpu_threads=settings.inference_threads,
        max_batch=settings.inference_max_batch,
        max_wait_ms=settings.inference_max_wait_ms,
        stats_store=_ModelStatsInStore(store),
    )
