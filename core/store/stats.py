"""Small histories written now and then: Fear & Greed readings, provider health events, model statistics."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Column, DateTime, Float, Integer, String, Table, Text, delete, insert, select
from sqlalchemy.exc import IntegrityError

from core.clock import format_utc, utc_now
from core.records import FearGreedReading
from core.store.database import Database, aware, metadata

__all__ = ["Stats", "fear_greed", "model_stats", "source_events"]

fear_greed = Table(
    "fear_greed",
    metadata,
    Column("ts", DateTime(timezone=True), primary_key=True),
    Column("value", Integer, nullable=False),
    Column("classification", String(32), nullable=False),
    Column("source", String(64), nullable=False),
)
source_events = Table(
    "source_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts", DateTime(timezone=True), index=True, nullable=False),
    Column("name", String(64), nullable=False),
    Column("category", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("error", Text),
    Column("latency_ms", Float),
)
model_stats = Table("model_stats", metadata, Column("model_id", String(200), primary_key=True), Column("data", Text))


class Stats:
    """Fear & Greed history, provider status changes and the models' persisted statistics."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def save_fear_greed(self, reading: FearGreedReading) -> None:
        """Store a Fear & Greed reading once per timestamp."""
        try:
            self._db.write(insert(fear_greed).values(ts=reading.timestamp, value=reading.value,
                                                     classification=reading.classification, source=reading.source))
        except IntegrityError:
            pass  # that day's reading is stored already

    def fear_greed_history(self, limit: int = 90) -> list[dict[str, Any]]:
        """Return stored Fear & Greed readings, oldest first."""
        with self._db.engine.connect() as conn:
            rows = conn.execute(select(fear_greed).order_by(fear_greed.c.ts.desc()).limit(limit)).mappings().all()
        return [{"timestamp": format_utc(aware(r["ts"])), "value": r["value"],  # type: ignore[arg-type]
                 "classification": r["classification"], "source": r["source"]} for r in reversed(rows)]

    def save_source_event(self, name: str, category: str, status: str, error: str | None,
                          latency_ms: float | None) -> None:
        """Record a provider's status change."""
        self._db.write(insert(source_events).values(ts=utc_now(), name=name, category=category, status=status,
                                                    error=error, latency_ms=latency_ms))

    def load_model_stats(self) -> dict[str, dict[str, Any]]:
        """Return persisted model statistics by model id."""
        with self._db.engine.connect() as conn:
            rows = conn.execute(select(model_stats)).all()
        return {r.model_id: json.loads(r.data) for r in rows}

    def save_model_stats(self, stats: dict[str, dict[str, Any]]) -> None:
        """Replace persisted model statistics."""
        with self._db.lock, self._db.engine.begin() as conn:
            conn.execute(delete(model_stats))
            if stats:
                conn.execute(insert(model_stats), [{"model_id": k, "data": json.dumps(v)} for k, v in stats.items()])
