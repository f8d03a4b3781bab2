"""`system_status.data_sources` counts: every source is active, degraded or inactive, at every level (#9)."""

from __future__ import annotations

from core.records import SourceHealth
from desk.status import data_sources_section

HEALTH = [
    SourceHealth(name="binance", category="market_data", status="active"),
    SourceHealth(name="kraken", category="market_data", status="degraded", last_error="HTTP 429"),
    SourceHealth(name="coinlore", category="market_data", status="inactive", last_error="timeout"),
    SourceHealth(name="coindesk", category="news", status="degraded", reason="stale"),
]


def test_data_sources_count_degraded_at_the_top_level() -> None:
    section = data_sources_section(HEALTH, "live", simulated=False)
    assert (section.total, section.active, section.degraded, section.inactive) == (4, 1, 2, 1)


def test_data_sources_totals_add_up_at_every_level() -> None:
    section = data_sources_section(HEALTH, "live", simulated=False)
    assert section.total == section.active + section.degraded + section.inactive
    for counts in section.categories.values():
        assert counts["total"] == counts["active"] + counts["degraded"] + counts["inactive"]
