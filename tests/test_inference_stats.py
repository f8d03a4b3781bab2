"""Per-model statistics: counting, windows, percentiles, persistence."""

from __future__ import annotations

import json

from inference.stats import JsonStatsStore, ModelStats, StatsRegistry

HOUR = 3600.0


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_stats_without_calls_report_none():
    snapshot = ModelStats("m").snapshot()
    assert (snapshot["success_rate"], snapshot["avg_response_time"], snapshot["p95_ms"]) == (None, None, None)
    assert snapshot["last_used"] is None


def test_stats_count_successes_and_failures():
    stats = ModelStats("m")
    for ms in (10.0, 20.0, 30.0):
        stats.record_success(ms)
    stats.record_failure("RuntimeError: boom")
    assert (stats.calls, stats.successes, stats.failures) == (4, 3, 1)
    assert stats.success_rate == 75.0
    assert stats.avg_response_time_ms == 20.0
    assert stats.last_error == "RuntimeError: boom"


def test_stats_rejected_calls_do_not_lower_success_rate():
    stats = ModelStats("m")
    stats.record_success(5.0)
    stats.record_rejected("queue full")
    assert (stats.success_rate, stats.rejected, stats.calls) == (100.0, 1, 1)


def test_stats_last_hour_forgets_old_calls():
    clock = FakeClock()
    stats = ModelStats("m", clock=clock)
    stats.record_failure("old")
    clock.now += 2 * HOUR
    stats.record_success(1.0)
    assert stats.success_rate == 50.0
    assert stats.success_rate_last_hour == 100.0
    clock.now += 2 * HOUR
    assert stats.success_rate_last_hour is None


def test_stats_p95_nearest_rank():
    stats = ModelStats("m")
    for ms in range(1, 101):
        stats.record_success(float(ms))
    assert stats.p95_ms == 95.0


def test_stats_last_used_is_iso_z():
    clock = FakeClock(0.0)
    stats = ModelStats("m", clock=clock)
    stats.record_success(1.0)
    assert stats.snapshot()["last_used"] == "1970-01-01T00:00:00Z"


def test_stats_roundtrip_through_dict():
    clock = FakeClock()
    stats = ModelStats("m", clock=clock)
    stats.record_success(12.5, n_texts=3)
    stats.record_failure("boom")
    again = ModelStats.from_dict("m", json.loads(json.dumps(stats.to_dict())), clock=clock)
    assert again.snapshot() == stats.snapshot()


def test_stats_from_malformed_dict_starts_empty():
    assert ModelStats.from_dict("m", {"calls": "many"}).calls == 0


def test_json_store_saves_and_loads_registry(tmp_path):
    store = JsonStatsStore(tmp_path / "data" / "stats.json")
    registry = StatsRegistry(store)
    registry.get("a").record_success(3.0)
    registry.save()
    loaded = StatsRegistry(store)
    loaded.load()
    assert loaded.get("a").successes == 1


def test_json_store_unreadable_file_loads_empty(tmp_path):
    path = tmp_path / "stats.json"
    path.write_text("{not json")
    assert JsonStatsStore(path).load() == {}
