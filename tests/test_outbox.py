from __future__ import annotations

import asyncio

import pytest

from ws.outbox import Outbox, OutboxFull


async def test_keyed_frames_coalesce_latest_wins_in_first_arrival_order():
    box = Outbox(maxsize=4)
    box.put("btc-1", key="BTC")
    box.put("eth-1", key="ETH")
    box.put("btc-2", key="BTC")
    assert [await box.get(), await box.get()] == ["btc-2", "eth-1"]
    assert box.coalesced == 1


def test_unkeyed_frame_past_the_bound_raises():
    box = Outbox(maxsize=2)
    box.put("a")
    box.put("b")
    with pytest.raises(OutboxFull):
        box.put("c")


async def test_urgent_frame_replaces_the_backlog():
    box = Outbox(maxsize=2)
    box.put("a")
    box.put("p", key="BTC")
    box.put_urgent("bye")
    assert await box.get() == "bye"
    assert len(box) == 0


async def test_get_waits_for_a_frame():
    box = Outbox()
    waiter = asyncio.create_task(box.get())
    await asyncio.sleep(0)
    assert not waiter.done()
    box.put("x")
    assert await asyncio.wait_for(waiter, 1) == "x"
