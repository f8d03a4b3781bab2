"""`system_status.data_sources` counts: every source is active, degraded or inactive, at every level."""

from __future__ import annotations

import asyncio
import json

from core.bus import Bus
from core.protocol import DatabaseSection, SystemStatusMessage
from core.records import SourceHealth
from desk.status import FreshStatus, build_system_status, data_sources_section

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


class _Builder:
    """Builds a status whose `version` says which build it was; each build waits for `release`."""

    def __init__(self) -> None:
        self.calls = 0
        self.release = asyncio.Event()
        self.release.set()

    async def __call__(self) -> SystemStatusMessage:
        self.calls += 1
        await self.release.wait()
        sources = data_sources_section([], "demo", simulated=True)
        database = DatabaseSection(online=True, last_check=None, ai_models_db=True, main_db=True)
        return build_system_status(models=[], sources=sources, database=database, requests_last_minute=0,
                                   requests_last_hour=0, connections=0, uptime_s=0.0, agent_running=True,
                                   version=f"build {self.calls}")


async def test_fresh_status_builds_once_for_clients_connecting_together() -> None:
    builder = _Builder()
    builder.release.clear()
    fresh = FreshStatus(builder, Bus())
    waiting = [asyncio.create_task(fresh.envelope()) for _ in range(20)]
    await asyncio.sleep(0)
    builder.release.set()
    envelopes = await asyncio.gather(*waiting)
    assert builder.calls == 1 and all(env is not None and '"build 1"' in env.text for env in envelopes)


async def test_fresh_status_carries_the_topics_position() -> None:
    bus = Bus()
    bus.publish("system", (await _Builder()()))
    envelope = await FreshStatus(_Builder(), bus).envelope()
    assert envelope is not None and (envelope.seq, envelope.epoch) == (1, bus.epoch("system"))
    assert json.loads(envelope.text)["seq"] == 1


async def test_fresh_status_is_rebuilt_once_older_than_its_max_age() -> None:
    builder, now = _Builder(), [0.0]
    fresh = FreshStatus(builder, Bus(), max_age_s=1.0, clock=lambda: now[0])
    await fresh.envelope()
    await fresh.envelope()
    now[0] = 1.0
    await fresh.envelope()
    assert builder.calls == 2


async def test_fresh_status_that_takes_too_long_yields_none() -> None:
    builder = _Builder()
    builder.release.clear()
    fresh = FreshStatus(builder, Bus(), timeout_s=0.01)
    assert await fresh.envelope() is None
    await fresh.close()
