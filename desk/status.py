"""Builders of the two monitoring messages from real registries: `system_status` and `models_status`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from core.clock import format_utc
from core.protocol import (
    AiModelsSection,
    DatabaseSection,
    DataSourcesSection,
    ModelEntry,
    ModelsStatusData,
    ModelsStatusMessage,
    SourceEntry,
    StatsSection,
    SystemStatusMessage,
)
from core.records import SourceHealth

__all__ = ["build_models_status", "build_system_status", "count_models", "data_sources_section"]


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
) -> SystemStatusMessage:
    """Build `system_status` with its sections at the top level, as the documented clients read it."""
    counts = count_models(models)
    return SystemStatusMessage(
        ai_models=AiModelsSection(
            **counts,
            models=[{"id": m["id"], "status": m["status"], "reason": m.get("reason"),
                     "success_rate": m.get("success_rate"), "error": m.get("error")} for m in models],
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
    )
