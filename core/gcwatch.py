"""Time every pause of Python's cyclic garbage collector, per generation, and apply the GC tuning.

A full collection walks every tracked object, so with a thousand sockets open it paused the event
loop for 120-187 ms: every message in flight waited that long. `GcWatch` makes those pauses
visible (`/metrics`, `bench/soak.py`), `tune_gc()` applies `GC_THRESHOLD` and `GC_FREEZE`
(docs/scaling.md has the measurements behind the defaults).

The callback runs inside every collection, so it only bumps counters in lists made up front: a
fixed histogram and a short ring of recent pauses per generation, never a growing structure.
"""

from __future__ import annotations

import asyncio
import bisect
import gc
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from core.quantiles import nearest_rank

__all__ = ["PAUSE_BUCKETS_S", "GcPacer", "GcWatch", "frozen_objects", "tune_gc"]

logger = logging.getLogger(__name__)

# Upper bounds of the pause histogram, in seconds (Prometheus `le`); the last bucket is +Inf.
PAUSE_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
RECENT_PAUSES = 256  # per generation: enough for a p99 over the last few minutes of full collections
GENERATIONS = 3


_frozen_counted = 0


def frozen_objects() -> int:
    """Return how many objects the permanent generation held when it was last counted.

    Counting walks every frozen object with the event loop standing still (21 ms for about 114,000
    on the development machine), so it is done only where a collection walks everything anyway: at
    start-up's freeze and at the pacer's collection every `full_every_s`. A scrape never counts.
    """
    return _frozen_counted


def _freeze_and_count() -> None:
    global _frozen_counted
    gc.freeze()
    _frozen_counted = gc.get_freeze_count()


class GcWatch:
    """Counts and times collections through `gc.callbacks` while installed.

    Args:
        buckets: upper bounds (seconds) of the histogram, ascending.

    Trade-off: the histogram is cumulative since `install()` and cheap; percentiles come from the
    ring of the last `RECENT_PAUSES` pauses, so they describe recent behaviour, not the whole run.
    """

    def __init__(self, buckets: tuple[float, ...] = PAUSE_BUCKETS_S) -> None:
        self.buckets = buckets
        self.counts = [[0] * (len(buckets) + 1) for _ in range(GENERATIONS)]
        self.total_s = [0.0] * GENERATIONS
        self.max_s = [0.0] * GENERATIONS
        self.cpu_s = [0.0] * GENERATIONS  # this thread's CPU time: the pause minus time descheduled
        self.collected = [0] * GENERATIONS
        self.recent: list[deque[float]] = [deque(maxlen=RECENT_PAUSES) for _ in range(GENERATIONS)]
        self._started_ns = 0
        self._started_cpu_ns = 0
        self.installed = False

    def install(self) -> None:
        """Start timing collections (idempotent)."""
        if not self.installed:
            gc.callbacks.append(self._on_gc)
            self.installed = True

    def uninstall(self) -> None:
        """Stop timing collections (idempotent)."""
        if self.installed:
            gc.callbacks.remove(self._on_gc)
            self.installed = False

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started_ns = time.perf_counter_ns()
            self._started_cpu_ns = time.thread_time_ns()
            return
        elapsed = (time.perf_counter_ns() - self._started_ns) / 1e9
        generation = info["generation"]
        self.cpu_s[generation] += (time.thread_time_ns() - self._started_cpu_ns) / 1e9
        self.counts[generation][bisect.bisect_left(self.buckets, elapsed)] += 1
        self.total_s[generation] += elapsed
        self.collected[generation] += info["collected"]
        if elapsed > self.max_s[generation]:
            self.max_s[generation] = elapsed
        self.recent[generation].append(elapsed)

    def describe(self) -> dict[str, Any]:
        """Return per generation: collections, pause total/max and recent p50/p99 in ms."""
        out: dict[str, Any] = {}
        for generation in range(GENERATIONS):
            recent = sorted(self.recent[generation])
            out[str(generation)] = {
                "collections": sum(self.counts[generation]),
                "collected_objects": self.collected[generation],
                "pause_total_ms": round(self.total_s[generation] * 1000, 1),
                "cpu_total_ms": round(self.cpu_s[generation] * 1000, 1),
                "pause_max_ms": round(self.max_s[generation] * 1000, 2),
                "recent_p50_ms": _rank(recent, 0.50),
                "recent_p99_ms": _rank(recent, 0.99),
            }
        out["frozen_objects"] = frozen_objects()
        out["threshold"] = list(gc.get_threshold())
        return out


def _rank(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    return round(nearest_rank(ordered, q) * 1000, 2)


def tune_gc(threshold: tuple[int, ...], freeze: bool) -> None:
    """Apply GC_THRESHOLD (empty: Python's default) and, with GC_FREEZE, freeze what start-up made.

    Freezing moves every object alive now (modules, the app, its settings and routes) into the
    permanent generation, so a full collection later walks only what connections and messages
    created. Call it once, after start-up: what is frozen is never collected.
    """
    if threshold:
        gc.set_threshold(*threshold)
    if freeze:
        gc.collect()
        _freeze_and_count()
    logger.info("gc: threshold %s, %s objects frozen", gc.get_threshold(), frozen_objects())


class GcPacer:
    """Runs the collector on a clock instead of on allocation counts (GC_PACE_MS, docs/scaling.md).

    Python starts a young collection when allocations minus frees pass the first threshold, and
    every free counts, also of an object long promoted. Once closed connections are freed at once
    (no reference cycles left), churn frees old objects as fast as new ones arrive: the count
    stays low, young collections come seconds apart, and each walks everything that arrived
    meanwhile (33 ms on average under the 1,000-client churn run, with 200-ms middle ones). On a
    clock each collection walks only what the last interval left.

    A full collection walks every live object (320-370 ms with 1,000 sockets open), so it comes
    after `full_after` connections have ended (turnover, under which the RSS grew 4 MB/min without
    full collections) or after `full_every_s`, whichever is first; steady clients see few.

    With `freeze_survivors`, what survives each middle collection is frozen (`gc.freeze()`): a live
    socket's objects are freed by their reference counts when it closes (it leaves no cycles,
    tests/test_connection_garbage.py), so no collection needs to walk them while it lives. The
    collection after `full_after` ended connections then walks only the last second's survivors,
    and only the one after `full_every_s` unfreezes and walks everything, for the garbage cycles
    that formed among frozen objects.

    Args:
        interval_s: a young collection this often.
        middle_every: every this many ticks the middle generation is collected with it.
        full_every_s: a full collection at least this often: the cycles the first two miss.
        turnover: returns a count that only grows (connections ended); by default none: time alone.
        full_after: a full collection once `turnover` has grown this much since the last one.
        freeze_survivors: freeze what each middle collection leaves (above).
    """

    def __init__(
        self,
        interval_s: float,
        middle_every: int = 10,
        full_every_s: float = 600.0,
        turnover: Callable[[], int] = lambda: 0,
        full_after: int = 3000,
        freeze_survivors: bool = False,
    ) -> None:
        if interval_s <= 0 or middle_every < 1 or full_every_s <= 0 or full_after < 1:
            raise ValueError("interval_s and full_every_s must be > 0, middle_every and full_after >= 1")
        self.interval_s = interval_s
        self.middle_every = middle_every
        self.full_every_s = full_every_s
        self.turnover = turnover
        self.full_after = full_after
        self.freeze_survivors = freeze_survivors
        self._turnover_at_full = 0
        self.ticks = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._next_full = 0.0

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start collecting on `loop`'s clock (idempotent)."""
        if self._handle is None:
            self._loop = loop
            self._next_full = loop.time() + self.full_every_s
            self._turnover_at_full = self.turnover()
            self._handle = loop.call_later(self.interval_s, self._tick)

    def stop(self) -> None:
        """Stop; automatic collection by counts goes on as before."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _tick(self) -> None:
        loop = self._loop
        assert loop is not None
        self.ticks += 1
        turnover = self.turnover()
        if loop.time() >= self._next_full:
            self._collect_everything()
            self._next_full = loop.time() + self.full_every_s
            self._turnover_at_full = turnover
        elif turnover - self._turnover_at_full >= self.full_after:
            gc.collect(2)
            self._turnover_at_full = turnover
        elif self.ticks % self.middle_every == 0:
            gc.collect(1)
            if self.freeze_survivors:
                gc.freeze()
        else:
            gc.collect(0)
        self._handle = loop.call_later(self.interval_s, self._tick)

    def _collect_everything(self) -> None:
        if not self.freeze_survivors:
            gc.collect(2)
            return
        gc.unfreeze()
        gc.collect(2)
        _freeze_and_count()
