"""`GET /metrics` for Prometheus, read at scrape time from the components that already count.

Nothing on a hot path touches a Prometheus object: the collector reads the socket registry's counters,
the bus, the providers' bookkeeping (the live feeds' pools), the models' statistics (the runtime's
`models()`), the cluster and the GC pause histogram when a scrape arrives. Each app gets its own
registry, so several apps in one process (tests) do not collide.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from core.gcwatch import frozen_objects
from core.rest import error_responses

if TYPE_CHECKING:
    from core.bus import Bus
    from core.counters import RequestCounter
    from core.gcwatch import GcWatch
    from core.store import Store
    from desk.cluster import Cluster
    from desk.live_feeds import LiveFeeds
    from desk.news import NewsDesk
    from desk.runtime import Runtime

__all__ = ["MetricsCollector", "OpenSockets", "build_metrics_router", "build_registry"]

logger = logging.getLogger(__name__)

STATUS_VALUE = {"active": 1.0, "degraded": 0.5, "inactive": 0.0}

# The socket registry's plain counters: (metric, attribute of its stats, help).
SOCKET_COUNTERS = (
    ("hub_ws_messages_sent", "messages_sent", "Frames written to sockets"),
    ("hub_ws_messages_sent_direct", "messages_sent_direct",
     "Of the frames written, those built once and written straight to the transport (ws/direct.py)"),
    ("hub_ws_messages_received", "messages_received", "Frames received from clients"),
    ("hub_ws_errors_sent", "errors_sent", "error messages sent to clients"),
    ("hub_ws_slow_consumer_closes", "slow_consumer_closes", "Connections closed as SLOW_CONSUMER (1013)"),
    ("hub_ws_refused_connections", "refused_connections", "Connections refused by the connection limits"),
    ("hub_ws_idle_closes", "idle_closes", "Connections closed by the idle timeout"),
)


class SocketStatsView(Protocol):
    """The registry's running counters (those of SOCKET_COUNTERS are read by name)."""

    @property
    def connections(self) -> Mapping[str, int]: ...

    @property
    def coalesced(self) -> int: ...

    @property
    def dropped_on_close(self) -> int: ...


class OutboxView(Protocol):
    """A session's queue of frames waiting to be sent."""

    @property
    def coalesced(self) -> int: ...

    def __len__(self) -> int: ...


class EndpointView(Protocol):
    """The endpoint a session serves."""

    @property
    def path(self) -> str: ...


class SessionView(Protocol):
    """One open socket, as monitoring sees it: the endpoint it serves and its outbox."""

    @property
    def spec(self) -> EndpointView: ...

    @property
    def outbox(self) -> OutboxView: ...


class OpenSockets(Protocol):
    """The transport's socket registry (`ws/`, which `api/` never imports), as the collector reads it."""

    @property
    def sessions(self) -> Collection[SessionView]: ...

    @property
    def stats(self) -> SocketStatsView: ...


class MetricsCollector(Collector):
    """Turns the components' own counters into Prometheus metrics on every scrape.

    Args:
        sockets: the socket registry (connections, outboxes, frame counters).
        counter: HTTP requests, WebSocket connects and client messages.
        bus, store, news: topic positions, the journal's health, refused news.
        runtime: whether the producers run, the sources' health, the models, the event loop.
        feeds: the live feeds, whose pools count each provider's fetches (None without sources).
        cluster: leadership and backplane counters (None without REDIS_URL).
        gc_watch: the garbage collector's pauses.
    """

    def __init__(
        self, *, sockets: OpenSockets, counter: RequestCounter, bus: Bus, store: Store, news: NewsDesk,
        runtime: Runtime, feeds: LiveFeeds | None, cluster: Cluster | None, gc_watch: GcWatch,
    ) -> None:
        self.sockets = sockets
        self.counter = counter
        self.bus = bus
        self.store = store
        self.news = news
        self.runtime = runtime
        self.feeds = feeds
        self.cluster = cluster
        self.gc_watch = gc_watch

    def collect(self) -> Iterator[Metric]:
        """Yield every metric family (a failing section is logged and skipped, never fatal)."""
        for section in (self._sockets, self._bus, self._providers, self._models, self._cluster, self._gc):
            try:
                yield from section()
            except Exception:
                logger.exception("metrics: %s section failed", section.__name__)

    def _sockets(self) -> Iterator[Metric]:
        stats = self.sockets.stats
        connections = GaugeMetricFamily(
            "hub_ws_connections", "Open WebSocket connections", labels=["endpoint"]
        )
        depth = GaugeMetricFamily(
            "hub_ws_outbox_depth", "Frames waiting in outboxes, summed", labels=["endpoint"]
        )
        deepest = GaugeMetricFamily(
            "hub_ws_outbox_depth_max", "Frames waiting in the fullest outbox", labels=["endpoint"]
        )
        open_sessions = list(self.sockets.sessions)
        sessions_by_path: dict[str, list[SessionView]] = {}
        for session in open_sessions:
            sessions_by_path.setdefault(session.spec.path, []).append(session)
        for path in sorted(set(stats.connections) | set(sessions_by_path)):
            sessions = sessions_by_path.get(path, [])
            connections.add_metric([path], stats.connections.get(path, 0))
            depth.add_metric([path], sum(len(s.outbox) for s in sessions))
            deepest.add_metric([path], max((len(s.outbox) for s in sessions), default=0))
        yield connections
        yield depth
        yield deepest
        for name, attribute, help_text in SOCKET_COUNTERS:
            yield CounterMetricFamily(name, help_text, value=getattr(stats, attribute))
        dropped = CounterMetricFamily(
            "hub_ws_messages_dropped",
            "Frames never sent: price updates replaced by a newer one (coalesced), "
            "or discarded when a slow consumer was closed",
            labels=["reason"],
        )
        live_coalesced = sum(s.outbox.coalesced for s in open_sessions)
        dropped.add_metric(["coalesced"], stats.coalesced + live_coalesced)
        dropped.add_metric(["slow_consumer"], stats.dropped_on_close)
        yield dropped
        yield CounterMetricFamily(
            "hub_requests",
            "HTTP requests, WebSocket connects and client messages",
            value=self.counter.total,
        )

    def _bus(self) -> Iterator[Metric]:
        seq = GaugeMetricFamily("hub_bus_seq", "Newest seq per topic", labels=["topic"])
        listeners = GaugeMetricFamily("hub_bus_listeners", "Listeners per topic", labels=["topic"])
        for topic, info in self.bus.describe().items():
            seq.add_metric([topic], info["seq"])
            listeners.add_metric([topic], info["listeners"])
        yield seq
        yield listeners
        yield GaugeMetricFamily(
            "hub_journal_ok", "1 while the news journal can write (else news answers 503)",
            value=0.0 if self.store.journal_error else 1.0,
        )
        yield CounterMetricFamily(
            "hub_news_refused", "News acknowledgements refused because nothing durable could be written",
            value=self.news.refused,
        )
        yield GaugeMetricFamily(
            "hub_agent_running",
            "1 when every producer task of this process is alive",
            value=1.0 if self.runtime.agent_running else 0.0,
        )

    def _providers(self) -> Iterator[Metric]:
        labels = ["provider", "category"]
        status = GaugeMetricFamily("hub_provider_status", "1 active, 0.5 degraded, 0 inactive", labels=labels)
        requests = CounterMetricFamily(
            "hub_provider_requests", "Upstream fetches (successes and failures)", labels=labels
        )
        errors = CounterMetricFamily("hub_provider_errors", "Upstream fetches that failed", labels=labels)
        latency = GaugeMetricFamily(
            "hub_provider_latency_ms", "Latency of the provider's last fetch", labels=labels
        )
        for health in self.runtime.source_health():
            key = [health.name, health.category]
            status.add_metric(key, STATUS_VALUE.get(health.status, 0.0))
            if health.latency_ms is not None:
                latency.add_metric(key, health.latency_ms)
            state = _provider_state(self.feeds, health.category, health.name)
            if state is not None:
                requests.add_metric(key, state.successes + state.failures)
                errors.add_metric(key, state.failures)
        yield from (status, requests, errors, latency)

    def _models(self) -> Iterator[Metric]:
        calls = CounterMetricFamily("hub_model_calls", "Model calls (batches) run", labels=["model"])
        failures = CounterMetricFamily(
            "hub_model_failures", "Model calls that raised or timed out", labels=["model"]
        )
        available = GaugeMetricFamily(
            "hub_model_available", "1 when the model is loaded and answering", labels=["model"]
        )
        latency = SummaryMetricFamily(
            "hub_model_latency_ms",
            "Latency of successful model calls; quantile 0.95 over recent calls",
            labels=["model"],
        )
        for model in self.runtime.models():
            model_id = str(model.get("id"))
            available.add_metric([model_id], 1.0 if model.get("status") == "available" else 0.0)
            n_calls = int(model.get("calls") or 0)
            n_failures = int(model.get("failures") or 0)
            calls.add_metric([model_id], n_calls)
            failures.add_metric([model_id], n_failures)
            successes = int(model.get("successes", n_calls - n_failures) or 0)
            avg = model.get("avg_response_time")
            if avg is not None:
                latency.add_metric([model_id], count_value=successes, sum_value=float(avg) * successes)
                if model.get("p95_ms") is not None:
                    latency.samples.append(
                        Sample(
                            "hub_model_latency_ms",
                            {"model": model_id, "quantile": "0.95"},
                            float(model["p95_ms"]),
                        )
                    )
        yield from (calls, failures, available, latency)

    def _cluster(self) -> Iterator[Metric]:
        cluster = self.cluster
        if cluster is None:
            yield GaugeMetricFamily("hub_leader", "1 when this process runs the producers", value=1.0)
            return
        info = cluster.describe()
        yield GaugeMetricFamily(
            "hub_leader", "1 when this process runs the producers", value=1.0 if info["leader"] else 0.0
        )
        yield GaugeMetricFamily(
            "hub_backplane_up", "1 while subscribed to Redis", value=1.0 if info["online"] else 0.0
        )
        yield GaugeMetricFamily("hub_cluster_processes", "App processes seen in Redis", value=info["members"])
        yield GaugeMetricFamily(
            "hub_backplane_pending", "Published envelopes waiting for Redis", value=info["pending"]
        )
        yield CounterMetricFamily("hub_leader_terms", "Times this process was elected", value=info["terms"])
        for name, help_text in (
            ("relayed", "Envelopes this process stored in Redis as leader"),
            ("received", "Envelopes received from other processes"),
            ("resyncs", "Catch-ups from the Redis history"),
            ("dropped", "Envelopes discarded unconfirmed (leadership lost, queue full)"),
            ("refused", "Envelopes refused because BACKPLANE_MAX_PENDING wait already"),
            ("reconnects", "Reconnections to Redis"),
            ("settled", "Publications whose lost answer was settled from Redis's dedupe key"),
        ):
            yield CounterMetricFamily(f"hub_backplane_{name}", help_text, value=info[name])
        yield CounterMetricFamily(
            "hub_news_kept", "News items received from the leader and stored in this process's database",
            value=info["kept"],
        )
        yield CounterMetricFamily(
            "hub_news_keep_failures", "Batches of received news that could not be stored here (retried)",
            value=info["keep_failures"],
        )

    def _gc(self) -> Iterator[Metric]:
        watch = self.gc_watch
        pauses = HistogramMetricFamily(
            "hub_gc_pause_seconds", "Pauses of the cyclic garbage collector (the event loop stands still)",
            labels=["generation"],
        )
        longest = GaugeMetricFamily(
            "hub_gc_pause_max_seconds", "Longest garbage-collector pause since start", labels=["generation"]
        )
        cpu = CounterMetricFamily(
            "hub_gc_cpu_seconds", "CPU time spent collecting (below the pause when the machine is busy)",
            labels=["generation"],
        )
        collected = CounterMetricFamily(
            "hub_gc_collected_objects", "Unreachable objects freed by the collector (garbage cycles)",
            labels=["generation"],
        )
        for generation, counts in enumerate(watch.counts):
            cumulative, buckets = 0, []
            for bound, count in zip((*watch.buckets, float("inf")), counts, strict=True):
                cumulative += count
                buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
            pauses.add_metric([str(generation)], buckets, sum_value=watch.total_s[generation])
            longest.add_metric([str(generation)], watch.max_s[generation])
            cpu.add_metric([str(generation)], watch.cpu_s[generation])
            collected.add_metric([str(generation)], watch.collected[generation])
        yield pauses
        yield longest
        yield cpu
        yield collected
        if self.runtime.event_loop is not None:
            loop = GaugeMetricFamily("hub_event_loop", "The event loop serving this process", labels=["loop"])
            loop.add_metric([self.runtime.event_loop.split(".")[0]], 1.0)
            yield loop
        yield GaugeMetricFamily(
            "hub_gc_frozen_objects",
            "Objects in the permanent generation when last counted (start-up, each collection of everything)",
            value=frozen_objects(),
        )


def _provider_state(feeds: Any, category: str, name: str) -> Any:
    pools = getattr(feeds, "pools", None) if feeds is not None else None
    if not pools or category not in pools:
        return None
    try:
        return pools[category].state(name)
    except KeyError:
        return None


def build_registry(collector: MetricsCollector) -> CollectorRegistry:
    """Return a registry with the app's collector plus process and platform metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry


def build_metrics_router(collector: MetricsCollector) -> APIRouter:
    """Return the router serving `GET /metrics` in the Prometheus text format."""
    registry = build_registry(collector)
    router = APIRouter()

    @router.get(
        "/metrics", tags=["system"], response_class=Response, summary="Prometheus metrics (text exposition format)",
        responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}},
                         "description": "The hub's counters plus process and platform metrics"},
                   **error_responses(429)},
    )
    async def metrics() -> Response:
        # On the event loop, so the collector reads the counters between two of its steps.
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return router
