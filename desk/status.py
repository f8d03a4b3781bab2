"""Builders of the two monitoring messages from real registries: `system_status` and `models_status`."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from core.bus import Bus, Envelope
from core.client_watch import ClientView
from core.clock import format_utc
from core.protocol import (
    AiModelsSection,
    ClientsSection,
    DatabaseSection,
    DataSourcesSection,
    ModelEntry,
    ModelsStatusData,
    ModelsStatusMessage,
    ModelSummary,
    SourceEntry,
    StatsSection,
    SystemStatusMessage,
)
from core.records import SourceHealth

__all__ = [
    "FreshStatus",
    "build_models_status",
    "build_system_status",
    "clients_section",
    "count_models",
    "data_sources_section",
]

logger = logging.getLogger(__name__)


def count_models(models: list[dict[str, Any]]) -> dict[str, int]:
    """Count models by status: total, available, loading, failed, skipped (total is their sum)."""
    statuses = [m.get("status") for m in models]
    return {
        "total": len(models),
        "available": statuses.count("available"),
        "loading": statuses.count("loading"),
        "failed": statuses.count("failed"),
        "skipped": statuses.count("skipped"),
    }


def build_models_status(models: list[dict[str, Any]]) -> ModelsStatusMessage:
    """Build `models_status` from the inference layer's per-model descriptions."""
    counts = count_models(models)
    return ModelsStatusMessage(data=ModelsStatusData(**counts, models=[ModelEntry(**m) for m in models]))


def data_sources_section(health: Iterable[SourceHealth], data_mode: str, simulated: bool) -> DataSourcesSection:
    """Summarise provider health; every count is derived from the per-source list."""
    entries = [
        SourceEntry(
            name=h.name,
            category=h.category,
            status=h.status,
            priority=h.priority,
            last_success=format_utc(h.last_success) if h.last_success else None,
            last_error=h.last_error,
            latency_ms=round(h.latency_ms, 1) if h.latency_ms is not None else None,
            reason=h.reason,
        )
        for h in health
    ]
    categories: dict[str, dict[str, int]] = {}
    for entry in entries:
        slot = categories.setdefault(entry.category, {"total": 0, "active": 0, "degraded": 0, "inactive": 0})
        slot["total"] += 1
        slot[entry.status] += 1
    statuses = [e.status for e in entries]
    return DataSourcesSection(
        total=len(entries),
        active=statuses.count("active"),
        degraded=statuses.count("degraded"),
        inactive=statuses.count("inactive"),
        categories=categories,
        pools=len(categories),
        sources=entries,
        data_mode=data_mode,
        simulated=simulated,
    )


def clients_section(view: ClientView) -> ClientsSection:
    """Describe how clients are told apart: the trusted proxies, arrivals and the single-address warning."""
    return ClientsSection(
        trusted_proxies=list(view.trusted_proxies),
        arrivals=view.arrivals,
        distinct_addresses=view.distinct_addresses,
        forwarded_ignored=view.forwarded_ignored,
        single_address=view.single_address,
        warning=view.warning,
    )


def build_system_status(
    *,
    models: list[dict[str, Any]],
    sources: DataSourcesSection,
    database: DatabaseSection,
    requests_last_minute: int,
    requests_last_hour: int,
    connections: int,
    uptime_s: float,
    agent_running: bool,
    version: str,
    clients: ClientsSection | None = None,
) -> SystemStatusMessage:
    """Build `system_status` with its sections at the top level, as the documented clients read it."""
    counts = count_models(models)
    return SystemStatusMessage(
        ai_models=AiModelsSection(
            **counts,
            models=[ModelSummary(id=m["id"], status=m["status"], reason=m.get("reason"),
                                 success_rate=m.get("success_rate"), error=m.get("error")) for m in models],
        ),
        data_sources=sources,
        database=database,
        stats=StatsSection(
            total_sources=sources.total,
            active_sources=sources.active,
            total_models=counts["total"],
            available_models=counts["available"],
            requests_last_minute=requests_last_minute,
            requests_last_hour=requests_last_hour,
            connections=connections,
            uptime_s=round(uptime_s, 1),
        ),
        agent_running=agent_running,
        version=version,
        clients=clients,
    )


class FreshStatus:
    """A `system_status` built when a client connects, instead of the last periodic one (up to 5 s old).

    Bounded work however many clients connect at once: one build runs at a time, and what it built is
    reused for `max_age_s`; each connecting client waits at most `timeout_s` for it and is otherwise
    greeted with the last periodic message. The build itself never blocks the loop (its database check
    runs in a thread). The message carries the topic's current seq and epoch: it is the state as of
    the stream's position, so a client resuming from that seq misses nothing.

    Args:
        build: returns a fresh `system_status` (the runtime's `build_system_status`).
        bus: where the topic's position is read.
    """

    def __init__(
        self,
        build: Callable[[], Awaitable[SystemStatusMessage]],
        bus: Bus,
        *,
        max_age_s: float = 1.0,
        timeout_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._build = build
        self.bus = bus
        self.max_age_s = max_age_s
        self.timeout_s = timeout_s
        self.clock = clock
        self.builds = 0  # how many times it built (tests and /metrics read it)
        self._last: tuple[float, SystemStatusMessage] | None = None
        self._running: asyncio.Task[SystemStatusMessage | None] | None = None

    async def envelope(self) -> Envelope | None:
        """Return a fresh `system_status` envelope for a connecting client (None when none came in time)."""
        message = await self._message()
        if message is None:
            return None
        seq, epoch = self.bus.last_seq("system"), self.bus.epoch("system")
        text = message.model_copy(update={"seq": seq, "epoch": epoch}).model_dump_json()
        return Envelope(topic="system", seq=seq, epoch=epoch, text=text)

    async def _message(self) -> SystemStatusMessage | None:
        last = self._last
        if last is not None and self.clock() - last[0] < self.max_age_s:
            return last[1]
        if self._running is None:
            self._running = asyncio.create_task(self._build_once(), name="fresh-status")
        try:
            # Shielded: one client giving up (or hanging up) does not cancel the build the others await.
            return await asyncio.wait_for(asyncio.shield(self._running), self.timeout_s)
        except TimeoutError:
            logger.warning("status: a fresh system_status took over %.1f s; greeting with the last one",
                           self.timeout_s)
            return None

    async def _build_once(self) -> SystemStatusMessage | None:
        try:
            message = await self._build()
        except Exception:  # logged once here, not by every client that waited for it
            logger.exception("status: building a fresh system_status failed; greeting with the last one")
            return None
        finally:
            self._running = None
        self.builds += 1
        self._last = (self.clock(), message)
        return message

    async def close(self) -> None:
        """Cancel a build in progress (at shutdown)."""
        running, self._running = self._running, None
        if running is not None:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
