"""Per-model call statistics, measured on real calls and persisted across restarts.

One call is one request to one model (any number of texts), timed from submission to answer, so
queueing time in the batcher counts: that is the latency a caller sees. Calls rejected because a
queue was full are counted apart (`rejected`) and do not lower the success rate: they say the
service was busy, not that the model is broken.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from core.clock import format_utc, parse_utc
from core.quantiles import nearest_rank

__all__ = ["JsonStatsStore", "ModelStats", "StatsRegistry", "StatsStore"]

logger = logging.getLogger(__name__)

Clock = Callable[[], float]


class StatsStore(Protocol):
    """Where statistics live between restarts (the app may pass its own database-backed store)."""

    def load(self) -> dict[str, dict[str, Any]]: ...

    def save(self, data: dict[str, dict[str, Any]]) -> None: ...


class JsonStatsStore:
    """Keep statistics in one JSON file; writes are atomic (temp file + rename)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    def load(self) -> dict[str, dict[str, Any]]:
        """Return the saved statistics, or {} when the file is missing or unreadable."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            logger.warning("stats: ignoring unreadable %s: %s", self.path, exc)
            return {}
        if not isinstance(data, dict):
            logger.warning(
                "stats: ignoring %s: expected a JSON object, got %s", self.path, type(data).__name__
            )
            return {}
        return {str(key): value for key, value in data.items() if isinstance(value, dict)}

    def save(self, data: dict[str, dict[str, Any]]) -> None:
        """Write all statistics at once."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".stats-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(data, handle, indent=1, sort_keys=True)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _percent(successes: int, calls: int) -> float | None:
    return None if calls == 0 else round(100.0 * successes / calls, 2)


class ModelStats:
    """Counters and recent history of one model.

    Args:
        model_id: the model these numbers belong to.
        window_s: length of the "recent" window used by `success_rate_last_hour`.
        latency_samples: how many recent successful latencies `p95_ms` is computed from.
        clock: wall-clock seconds (injectable for tests); wall time so the window survives restarts.
    """

    def __init__(
        self,
        model_id: str,
        *,
        window_s: float = 3600.0,
        latency_samples: int = 1000,
        clock: Clock = time.time,
    ) -> None:
        self.model_id = model_id
        self.window_s = window_s
        self._clock = clock
        self.calls = 0
        self.successes = 0
        self.failures = 0
        self.rejected = 0
        self.texts = 0
        self.total_ms = 0.0
        self.last_used: datetime | None = None
        self.last_error: str | None = None
        self.last_error_at: datetime | None = None
        # (wall time, ok) of calls inside the window; bounded so a flood cannot eat memory.
        self._recent: deque[tuple[float, bool]] = deque(maxlen=100_000)
        self._latencies: deque[float] = deque(maxlen=latency_samples)

    def _now(self) -> float:
        return self._clock()

    def _prune(self, now: float) -> None:
        while self._recent and self._recent[0][0] < now - self.window_s:
            self._recent.popleft()

    def record_success(self, elapsed_ms: float, n_texts: int = 1) -> None:
        """Count one call that returned an answer for every text."""
        now = self._now()
        self.calls += 1
        self.successes += 1
        self.texts += n_texts
        self.total_ms += elapsed_ms
        self._latencies.append(elapsed_ms)
        self._recent.append((now, True))
        self.last_used = datetime.fromtimestamp(now, UTC)
        self._prune(now)

    def record_failure(self, error: str) -> None:
        """Count one call that raised or timed out; `error` is kept as `last_error`."""
        now = self._now()
        self.calls += 1
        self.failures += 1
        self._recent.append((now, False))
        self.last_used = datetime.fromtimestamp(now, UTC)
        self.last_error = error
        self.last_error_at = self.last_used
        self._prune(now)

    def record_rejected(self, error: str) -> None:
        """Count one call refused before it ran (queue full); not part of the success rate."""
        self.rejected += 1
        self.last_error = error
        self.last_error_at = datetime.fromtimestamp(self._now(), UTC)

    @property
    def success_rate(self) -> float | None:
        """Lifetime successes / calls in percent (0-100), None before the first call."""
        return _percent(self.successes, self.calls)

    @property
    def success_rate_last_hour(self) -> float | None:
        """Successes / calls within the window, in percent, None without calls in the window."""
        self._prune(self._now())
        ok = sum(1 for _, success in self._recent if success)
        return _percent(ok, len(self._recent))

    @property
    def calls_last_hour(self) -> int:
        """Number of calls within the window."""
        self._prune(self._now())
        return len(self._recent)

    @property
    def avg_response_time_ms(self) -> float | None:
        """Mean latency of successful calls (lifetime), None before the first success."""
        return None if self.successes == 0 else round(self.total_ms / self.successes, 2)

    @property
    def p95_ms(self) -> float | None:
        """95th percentile (nearest rank) of the recent successful latencies."""
        if not self._latencies:
            return None
        return round(nearest_rank(sorted(self._latencies), 0.95), 2)

    def _counts(self) -> dict[str, int]:
        return {
            "calls": self.calls,
            "successes": self.successes,
            "failures": self.failures,
            "rejected": self.rejected,
            "texts": self.texts,
        }

    def snapshot(self) -> dict[str, Any]:
        """Return the numbers `describe_models()` shows."""
        return {
            **self._counts(),
            "success_rate": self.success_rate,
            "success_rate_last_hour": self.success_rate_last_hour,
            "calls_last_hour": self.calls_last_hour,
            "avg_response_time": self.avg_response_time_ms,
            "p95_ms": self.p95_ms,
            "last_used": format_utc(self.last_used) if self.last_used else None,
            "last_error": self.last_error,
        }

    def to_dict(self) -> dict[str, Any]:
        """Serialise everything needed to resume counting after a restart."""
        self._prune(self._now())
        return {
            **self._counts(),
            "total_ms": self.total_ms,
            "last_used": format_utc(self.last_used) if self.last_used else None,
            "last_error": self.last_error,
            "last_error_at": format_utc(self.last_error_at) if self.last_error_at else None,
            "recent": [[at, ok] for at, ok in self._recent],
            "latencies": list(self._latencies),
        }

    @classmethod
    def from_dict(cls, model_id: str, data: dict[str, Any], **kwargs: Any) -> ModelStats:
        """Rebuild statistics saved by `to_dict()`; unknown or broken fields fall back to zero."""
        stats = cls(model_id, **kwargs)
        try:
            stats.calls = int(data.get("calls", 0))
            stats.successes = int(data.get("successes", 0))
            stats.failures = int(data.get("failures", 0))
            stats.rejected = int(data.get("rejected", 0))
            stats.texts = int(data.get("texts", 0))
            stats.total_ms = float(data.get("total_ms", 0.0))
            stats.last_used = parse_utc(data["last_used"]) if data.get("last_used") else None
            stats.last_error = data.get("last_error")
            stats.last_error_at = parse_utc(data["last_error_at"]) if data.get("last_error_at") else None
            stats._recent.extend((float(at), bool(ok)) for at, ok in data.get("recent", []))
            stats._latencies.extend(float(ms) for ms in data.get("latencies", []))
        except (TypeError, ValueError, KeyError) as exc:
            logger.warning("stats: resetting %s, saved data is malformed: %s", model_id, exc)
            return cls(model_id, **kwargs)
        stats._prune(stats._now())
        return stats


class StatsRegistry:
    """All models' statistics, with optional persistence.

    Args:
        store: where to load from and save to; None keeps statistics in memory only.
        clock: wall-clock seconds, passed to every `ModelStats`.
    """

    def __init__(self, store: StatsStore | None = None, *, clock: Clock = time.time) -> None:
        self.store = store
        self._clock = clock
        self._models: dict[str, ModelStats] = {}

    def get(self, model_id: str) -> ModelStats:
        """Return the statistics of one model, creating empty ones on first use."""
        stats = self._models.get(model_id)
        if stats is None:
            stats = self._models[model_id] = ModelStats(model_id, clock=self._clock)
        return stats

    def load(self) -> None:
        """Replace in-memory statistics with the store's (no-op without a store)."""
        if self.store is None:
            return
        for model_id, data in self.store.load().items():
            self._models[model_id] = ModelStats.from_dict(model_id, data, clock=self._clock)

    def save(self) -> None:
        """Write all statistics to the store (no-op without a store)."""
        if self.store is None:
            return
        self.store.save(self.to_dict())

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Serialise all models' statistics."""
        return {model_id: stats.to_dict() for model_id, stats in self._models.items()}
