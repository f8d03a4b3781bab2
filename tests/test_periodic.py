"""core/periodic.py: fixed deadlines, skipped ticks, failures logged, supervised tasks; a fake clock, no sleeps."""

from __future__ import annotations

import asyncio
import logging

import pytest

from core.periodic import TaskSupervisor, run_every


class FakeTime:
    """A monotonic clock that moves only when the loop sleeps or a job says it took time."""

    def __init__(self, ticks: int) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []
        self.ticks_left = ticks

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))
        self.now += seconds
        self.ticks_left -= 1
        if self.ticks_left <= 0:
            raise asyncio.CancelledError


async def run_ticks(fake: FakeTime, job, interval_s: float = 1.0) -> None:
    with pytest.raises(asyncio.CancelledError):
        await run_every(interval_s, job, name="test job", clock=fake.clock, sleep=fake.sleep)


async def test_run_every_keeps_fixed_deadlines_whatever_a_tick_takes() -> None:
    fake = FakeTime(ticks=3)

    async def job() -> None:
        fake.now += 0.25

    await run_ticks(fake, job)
    assert fake.sleeps == [0.75, 0.75, 0.75]


async def test_run_every_skips_missed_ticks_instead_of_bursting() -> None:
    fake = FakeTime(ticks=3)
    durations = iter([2.5, 0.1, 0.1])

    async def job() -> None:
        fake.now += next(durations)

    await run_ticks(fake, job)
    assert fake.sleeps == [0.0, 0.9, 0.9]


async def test_run_every_logs_a_failing_tick_and_runs_the_next(caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeTime(ticks=2)
    calls = 0

    async def job() -> None:
        nonlocal calls
        calls += 1
        raise ValueError("upstream said no")

    with caplog.at_level(logging.ERROR):
        await run_ticks(fake, job)
    assert calls == 2 and "test job failed; retrying next tick" in caplog.text


async def test_supervisor_logs_a_crash_with_owner_and_name_and_keeps_it(caplog: pytest.LogCaptureFixture) -> None:
    supervisor = TaskSupervisor("desk")

    async def crash() -> None:
        raise RuntimeError("boom")

    with caplog.at_level(logging.ERROR):
        task = supervisor.spawn("feeder", crash())
        await asyncio.gather(task, return_exceptions=True)
        await asyncio.sleep(0)  # the done callback runs on the next loop turn
    assert "desk: task desk.feeder crashed" in caplog.text
    assert isinstance(supervisor.take_crash(), RuntimeError) and supervisor.take_crash() is None
    assert supervisor.tasks == {}


async def test_supervisor_cancel_all_ends_every_task() -> None:
    supervisor = TaskSupervisor("desk")
    waiters = [supervisor.spawn(f"wait-{i}", asyncio.Event().wait()) for i in range(3)]
    assert supervisor.all_alive
    await supervisor.cancel_all(timeout_s=5.0)
    assert all(task.cancelled() for task in waiters) and not supervisor.all_alive
