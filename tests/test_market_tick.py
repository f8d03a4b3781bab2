"""The market tick hands the event loop back between symbols."""

from __future__ import annotations

import asyncio

from core.bus import Bus, Envelope
from desk.market import MarketDesk
from sources.simulator import MarketSimulator

SYMBOLS = ("BTC", "ETH", "SOL", "XRP")


def _desk() -> tuple[MarketDesk, list[str | None]]:
    bus = Bus()
    published: list[str | None] = []

    def record(envelope: Envelope) -> None:
        published.append(envelope.key)

    bus.add_listener("market", record)
    return MarketDesk(bus, SYMBOLS, "demo", MarketSimulator(SYMBOLS)), published


async def test_work_waiting_on_the_loop_runs_between_two_symbols_fan_outs() -> None:
    # A news item committed during a tick waits for one symbol's fan-out, not for the whole tick.
    desk, published = _desk()
    ran_after: list[int] = []
    asyncio.get_running_loop().call_soon(lambda: ran_after.append(len(published)))
    quotes = await desk.tick_in_turns()
    assert [q.symbol for q in quotes] == list(SYMBOLS) == published
    assert 0 < ran_after[0] < len(SYMBOLS)
