"""`core/gcwatch.py`: collector pauses per generation through `gc.callbacks`, and the GC tuning."""

from __future__ import annotations

import asyncio
import gc
import itertools
import weakref
from collections.abc import Callable, Iterator

import pytest

import core.gcwatch
from core.config import ConfigError, Settings
from core.gcwatch import PAUSE_BUCKETS_S, GcPacer, GcWatch, frozen_objects, tune_gc


@pytest.fixture
def watch() -> Iterator[GcWatch]:
    """A watch with automatic collection off, so only the test's own `gc.collect()` calls count."""
    watch = GcWatch()
    gc.disable()
    watch.install()
    yield watch
    watch.uninstall()
    gc.enable()


@pytest.fixture
def restore_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.set_threshold(*threshold)
    gc.unfreeze()


def test_full_collection_is_counted_in_generation_2(watch: GcWatch) -> None:
    gc.collect(2)
    assert sum(watch.counts[2]) == 1 and watch.describe()["2"]["collections"] == 1
    assert watch.max_s[2] > 0 and watch.total_s[2] >= watch.max_s[2]


def test_young_collection_leaves_older_generations_alone(watch: GcWatch) -> None:
    gc.collect(0)
    assert sum(watch.counts[0]) == 1 and sum(watch.counts[1]) == sum(watch.counts[2]) == 0


def test_histogram_has_one_slot_per_bucket_plus_overflow(watch: GcWatch) -> None:
    assert all(len(counts) == len(PAUSE_BUCKETS_S) + 1 for counts in watch.counts)


def test_uninstalled_watch_counts_nothing(watch: GcWatch) -> None:
    watch.uninstall()
    gc.collect()
    assert watch._on_gc not in gc.callbacks and sum(map(sum, watch.counts)) == 0


def test_collected_cycles_are_counted(watch: GcWatch) -> None:
    cycle: list[object] = []
    cycle.append(cycle)
    del cycle
    gc.collect(2)
    assert watch.describe()["2"]["collected_objects"] >= 1


def test_tune_gc_sets_the_threshold(restore_gc: None) -> None:
    tune_gc((12345, 20, 30), freeze=False)
    assert gc.get_threshold() == (12345, 20, 30)


def test_tune_gc_freezes_what_start_up_made(restore_gc: None) -> None:
    gc.unfreeze()
    tune_gc((), freeze=True)
    assert gc.get_freeze_count() > 0


def test_gc_settings_are_read_from_the_environment() -> None:
    settings = Settings.from_env({"GC_THRESHOLD": "50000, 20,100", "GC_FREEZE": "1", "SERVER_LOOP": "asyncio"})
    assert settings.gc_threshold == (50000, 20, 100) and settings.gc_freeze
    assert settings.server_loop == "asyncio"


def test_gc_freeze_is_on_unless_switched_off() -> None:
    assert Settings.from_env({}).gc_freeze and not Settings.from_env({"GC_FREEZE": "0"}).gc_freeze


def test_gc_threshold_defaults_to_the_measured_one() -> None:
    assert Settings.from_env({}).gc_threshold == Settings().gc_threshold == (2000, 10, 10)


@pytest.mark.parametrize(
    "env",
    [{"GC_THRESHOLD": "fast"}, {"GC_THRESHOLD": "1,2,3,4"}, {"GC_THRESHOLD": "0"}, {"SERVER_LOOP": "trio"}],
)
def test_bad_gc_or_loop_setting_fails_with_its_name(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match=next(iter(env))):
        Settings.from_env(env)


async def _run_ticks(pacer: GcPacer, ticks: int) -> None:
    pacer.start(asyncio.get_running_loop())
    while pacer.ticks < ticks:
        await asyncio.sleep(0.005)
    pacer.stop()


async def test_pacer_collects_young_each_tick_and_the_middle_generation_every_nth(watch: GcWatch) -> None:
    pacer = GcPacer(0.005, middle_every=3, full_every_s=1000)
    await _run_ticks(pacer, 9)
    # Automatic collection is off here: every collection counted is the pacer's.
    ticks = pacer.ticks  # 9, or one more if two ticks fell within one sleep
    assert [sum(watch.counts[g]) for g in range(3)] == [ticks - ticks // 3, ticks // 3, 0]


async def test_pacer_collects_everything_once_its_full_interval_has_passed(watch: GcWatch) -> None:
    pacer = GcPacer(0.005, middle_every=3, full_every_s=0.001)
    await _run_ticks(pacer, 4)
    assert [sum(watch.counts[g]) for g in range(3)] == [0, 0, pacer.ticks]


async def test_pacer_collects_everything_once_enough_connections_have_ended(watch: GcWatch) -> None:
    ended = [0]
    pacer = GcPacer(0.005, middle_every=1000, full_every_s=1000, turnover=lambda: ended[0], full_after=5)
    pacer.start(asyncio.get_running_loop())
    while pacer.ticks < 3:
        await asyncio.sleep(0.005)
    assert sum(watch.counts[2]) == 0
    ended[0] = 5
    seen = pacer.ticks
    while pacer.ticks < seen + 3:
        await asyncio.sleep(0.005)
    pacer.stop()
    assert sum(watch.counts[2]) == 1  # once: the count starts again from 5


async def test_stopped_pacer_collects_nothing_more(watch: GcWatch) -> None:
    pacer = GcPacer(0.01)
    pacer.start(asyncio.get_running_loop())
    pacer.stop()
    await asyncio.sleep(0.05)
    assert pacer.ticks == 0 and sum(map(sum, watch.counts)) == 0


class _Node:
    """An object in a reference cycle: only the collector frees it."""

    def __init__(self) -> None:
        self.me = self


def _frozen_cycle() -> weakref.ref[_Node]:
    node = _Node()
    gc.freeze()
    return weakref.ref(node)


async def _run_until(pacer: GcPacer, done: Callable[[], bool]) -> None:
    pacer.start(asyncio.get_running_loop())
    while not done():
        await asyncio.sleep(0.005)
    pacer.stop()


async def test_pacer_freezes_what_survives_a_middle_collection(watch: GcWatch, restore_gc: None) -> None:
    survivor = _Node()
    pacer = GcPacer(0.005, middle_every=1, full_every_s=1000, freeze_survivors=True)
    await _run_ticks(pacer, 1)
    assert not any(obj is survivor for obj in gc.get_objects())  # in the permanent generation now


async def test_pacer_without_freezing_leaves_survivors_to_the_collector(watch: GcWatch, restore_gc: None) -> None:
    survivor = _Node()
    await _run_ticks(GcPacer(0.005, middle_every=1, full_every_s=1000), 1)
    assert any(obj is survivor for obj in gc.get_objects(2))


async def test_pacer_turnover_collection_does_not_walk_frozen_objects(watch: GcWatch, restore_gc: None) -> None:
    cycle = _frozen_cycle()
    ended = itertools.count()  # one more connection ended at every look
    pacer = GcPacer(0.005, middle_every=1000, full_every_s=1000, turnover=ended.__next__, full_after=1,
                    freeze_survivors=True)
    await _run_until(pacer, lambda: sum(watch.counts[2]) >= 1)
    assert cycle() is not None


async def test_pacer_full_interval_unfreezes_and_frees_cycles_among_frozen_objects(
    watch: GcWatch, restore_gc: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    cycle = _frozen_cycle()
    monkeypatch.setattr(core.gcwatch, "_frozen_counted", 0)
    pacer = GcPacer(0.005, middle_every=1000, full_every_s=0.001, freeze_survivors=True)
    await _run_until(pacer, lambda: sum(watch.counts[2]) >= 1)
    assert cycle() is None and gc.get_freeze_count() > 0  # freed, and the rest frozen again
    assert frozen_objects() > 0  # counted there: it walked everything anyway


def test_reading_the_frozen_count_does_not_walk_the_permanent_generation(
    restore_gc: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Counting walks every frozen object with the loop standing still (21 ms per 114,000): a
    # /metrics scrape reads the count taken at the last freeze of everything instead.
    tune_gc((), freeze=True)
    counted = frozen_objects()
    assert counted == gc.get_freeze_count() > 0
    monkeypatch.setattr(gc, "get_freeze_count", lambda: pytest.fail("counted on read"))
    assert GcWatch().describe()["frozen_objects"] == frozen_objects() == counted


def test_pacer_refuses_a_zero_interval() -> None:
    with pytest.raises(ValueError):
        GcPacer(0)


def test_recent_pause_percentiles_are_nearest_ranks() -> None:
    watch = GcWatch()
    watch.recent[0].extend([0.001, 0.002])  # two pauses of 1 and 2 ms
    described = watch.describe()["0"]
    assert described["recent_p50_ms"] == 1.0  # the smallest with half the pauses at or below it
    assert described["recent_p99_ms"] == 2.0
    assert watch.describe()["1"]["recent_p50_ms"] is None  # no pause yet: no figure
