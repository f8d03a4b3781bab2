"""Stepping a coroutine synchronously and finishing it only if it suspends (ws/eager.py)."""

from __future__ import annotations

import asyncio

import pytest

from ws.eager import step


async def _write(log: list[str], text: str, gate: asyncio.Event) -> None:
    await gate.wait()  # returns without suspending when the gate is open, like uvicorn's `writable`
    log.append(text)


async def test_a_coroutine_that_does_not_suspend_finishes_inside_step() -> None:
    log: list[str] = []
    gate = asyncio.Event()
    gate.set()
    assert step(_write(log, "a", gate)) is None
    assert log == ["a"]


async def test_a_suspended_coroutine_finishes_when_its_rest_is_awaited() -> None:
    log: list[str] = []
    gate = asyncio.Event()
    pending = step(_write(log, "a", gate))
    assert pending is not None and log == []
    task = asyncio.create_task(_await(pending))
    await asyncio.sleep(0)
    gate.set()
    await task
    assert log == ["a"]


async def _await(pending: object) -> None:
    await pending  # type: ignore[misc]


async def test_an_error_before_suspending_is_raised_by_step() -> None:
    async def broken() -> None:
        raise OSError("peer gone")

    with pytest.raises(OSError, match="peer gone"):
        step(broken())


async def test_an_error_after_suspending_is_raised_by_the_await() -> None:
    gate = asyncio.Event()

    async def broken() -> None:
        await gate.wait()
        raise OSError("peer gone")

    pending = step(broken())
    gate.set()
    with pytest.raises(OSError, match="peer gone"):
        await _await(pending)


async def test_cancelling_the_awaiting_task_cancels_the_suspended_coroutine() -> None:
    log: list[str] = []
    gate = asyncio.Event()
    cleaned: list[bool] = []

    async def write() -> None:
        try:
            await gate.wait()
            log.append("written")
        except asyncio.CancelledError:
            cleaned.append(True)
            raise

    pending = step(write())
    task = asyncio.create_task(_await(pending))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned == [True] and log == []
