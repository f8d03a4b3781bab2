"""The composition root: builds every component of one app process and hands each what it uses.

`compose(settings)` builds them, starting nothing; `app.py` builds the routers, the UI and the
lifespan from what it returns. Heavy or optional layers are imported only when configured: the
models (torch) with ENABLE_INFERENCE, the live sources with live data, Redis with REDIS_URL.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core.bus import Bus
from core.client_watch import ClientWatch
from core.config import (
    AccessSection,
    InferenceSection,
    LimitsSection,
    ServerSection,
    Settings,
    SourcesSection,
    StorageSection,
)
from core.counters import RequestCounter
from core.data_place import locate_data
from core.gcwatch import GcWatch
from core.lane import ScoringLane
from core.settings_base import reveal
from core.store import Store
from core.token_bucket import ClientBudgets
from desk.market import MarketDesk
from desk.news_relay import ClusterNewsDesk
from desk.runtime import Runtime
from desk.sentiment import SentimentBoard
from sources.simulator import MarketSimulator
from ws.admission import ConnectionLimiter
from ws.session import SocketRegistry

if TYPE_CHECKING:
    from desk.cluster import Cluster
    from desk.live_feeds import LiveFeeds
    from inference import InferenceService
    from space.parts import ScreenParts

__all__ = ["Components", "compose", "screen_parts"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Components:
    """Every long-lived component of one app process, as `compose()` wired them."""

    settings: Settings
    store: Store
    bus: Bus
    counter: RequestCounter
    client_watch: ClientWatch
    gc_watch: GcWatch
    market: MarketDesk
    news: ClusterNewsDesk
    sentiment: SentimentBoard
    inference: InferenceService | None
    feeds: LiveFeeds | None
    sockets: SocketRegistry
    runtime: Runtime
    cluster: Cluster | None
    # One budget per client for every door (REST, the UI's API, the texts of /api/sentiment), and
    # one lane for anonymous scoring (the playground and /api/sentiment): docs/limits.md.
    budgets: ClientBudgets
    lane: ScoringLane


def compose(settings: Settings) -> Components:
    """Build every component from `settings`; nothing starts until the runtime's `start()`."""
    store = Store(reveal(settings.database_url), settings.data_dir)
    data_place = locate_data(settings.data_dir, space_id=settings.space_id,
                             database_url_set=settings.database_url is not None,
                             space_storage_dir=settings.space_storage_dir)
    if data_place.storage == "ephemeral":
        logger.warning("runtime: data is ephemeral: %s", data_place.reason)
    bus = Bus(history_size=settings.history_size, journal=store if store.online else None)
    counter = RequestCounter()
    # Fed by the client-address middleware (core/client_address.py) that app.py puts in front.
    client_watch = ClientWatch(settings.trusted_proxies)
    gc_watch = GcWatch()  # pauses of the garbage collector, for /metrics
    simulator = MarketSimulator(settings.symbols, seed=settings.simulator_seed,
                                start_prices=dict(settings.simulator_prices))
    market = MarketDesk(bus, settings.symbols, settings.data_mode, simulator)
    inference = _build_inference(settings, store) if settings.enable_inference else None
    # A plain NewsDesk until a cluster attaches it; then followers forward ingestion to the leader.
    news = ClusterNewsDesk(bus, store, scorer=inference)
    live = settings.enable_sources and settings.data_mode != "demo"
    sentiment = SentimentBoard() if live else SentimentBoard(
        fear_greed_reason="live sources are off (DATA_MODE=demo or ENABLE_SOURCES=0)")
    feeds = _build_feeds(settings, store, market, news, sentiment, inference) if live else None
    sockets = SocketRegistry(
        bus=bus,
        limits=settings.section(LimitsSection),
        access=settings.section(AccessSection),
        symbols=frozenset(settings.symbols),
        counter=counter,
        limiter=ConnectionLimiter(settings.max_connections, settings.max_connections_per_ip),
    )
    runtime = Runtime(
        settings.section(ServerSection), settings.section(StorageSection),
        store=store, bus=bus, market=market, news=news, sentiment=sentiment, inference=inference,
        feeds=feeds, data_place=data_place, counter=counter, client_watch=client_watch, gc_watch=gc_watch,
        open_connections=lambda: len(sockets.sessions),
        join_cluster=_cluster_membership(settings, bus, news) if settings.redis_url else None,
    )
    # A monitoring client is greeted with a status built when it connects (desk/status.py, FreshStatus).
    sockets.fresh_greetings["system"] = runtime.fresh_system_status
    return Components(
        settings=settings, store=store, bus=bus, counter=counter, client_watch=client_watch,
        gc_watch=gc_watch, market=market, news=news, sentiment=sentiment, inference=inference,
        feeds=feeds, sockets=sockets, runtime=runtime, cluster=runtime.cluster,
        budgets=ClientBudgets(settings.rest_rate_per_s, settings.rest_burst),
        lane=ScoringLane(concurrency=settings.scoring_threads, waiting=settings.scoring_queue,
                         threads=settings.scoring_threads),
    )


def screen_parts(parts: Components) -> ScreenParts:
    """Hand the UI what it reads: the bus, store, market desk and models, and its settings values."""
    from space.parts import ScreenParts  # the UI's own type, loaded only where the UI is built

    settings = parts.settings
    return ScreenParts(
        bus=parts.bus, store=parts.store, market=parts.market, inference=parts.inference,
        symbols=settings.symbols, data_mode=settings.data_mode, admin_token=settings.admin_token,
        data_dir=settings.data_dir, ui_queue_max=settings.ui_queue_max, budgets=parts.budgets, lane=parts.lane,
    )


def _build_feeds(
    settings: Settings, store: Store, market: MarketDesk, news: ClusterNewsDesk, sentiment: SentimentBoard,
    inference: InferenceService | None,
) -> LiveFeeds:
    # Imported here: the providers' clients are not loaded in demo mode.
    from desk.live_feeds import LiveFeeds
    return LiveFeeds(settings.section(SourcesSection), symbols=settings.symbols, store=store, market=market,
                     news=news, sentiment=sentiment, scorer=inference)


def _cluster_membership(settings: Settings, bus: Bus, news: ClusterNewsDesk) -> Callable[[Runtime], Cluster]:
    """Return how this process joins the processes sharing REDIS_URL, once its runtime exists."""
    assert settings.redis_url is not None
    redis_url = settings.redis_url.get_secret_value()

    def join(runtime: Runtime) -> Cluster:
        from desk.cluster import Cluster  # imported here: redis is loaded only with REDIS_URL

        return Cluster(
            redis_url, bus, news,
            start_producers=runtime.start_producers, stop_producers=runtime.stop_producers,
            build_status=runtime.build_system_status, prefix=settings.redis_prefix,
            history_size=settings.history_size, status_interval_s=settings.status_interval_s,
            lock_ttl_s=settings.leader_lock_ttl_s, max_pending=settings.backplane_max_pending,
            publish_timeout_s=settings.backplane_publish_timeout_s,
        )

    return join


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


def _build_inference(settings: Settings, store: Store) -> InferenceService:
    # Imported here: torch and transformers take seconds to import, and ENABLE_INFERENCE=0 skips them.
    from inference import InferenceService

    return InferenceService(settings.section(InferenceSection), runtime_dir=settings.data_dir,
                            stats_store=_ModelStatsInStore(store))
