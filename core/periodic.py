"""Periodic jobs and the background tasks that run them, one way for every loop in the app.

`run_every` keeps fixed deadlines (a 1 s cadence stays 60 ticks a minute however long each tick
takes), skips the ticks it missed instead of bursting to catch up, and logs a failing tick and goes
on. `TaskSupervisor` owns background tasks: a strong reference each, named, a crash logged once with
its owner and name and kept to re-raise at shutdown, and a bounded cancel.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, NoReturn

__all__ = ["TaskSupervisor", "run_every"]

logger = logging.getLogger(__name__)

Job = Callable[[], Awaitable[object]]


async def run_every(
    interval_s: float,
    job: Job,
    *,
    name: str,
    log: logging.Logger = logger,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> NoReturn:
    """Run `job` now and then every `interval_s` seconds until cancelled.

    Args:
        interval_s: the period; deadlines are `start + k * interval_s`, never `end of tick + interval_s`.
        job: one tick. An exception is logged with `name` and the next tick runs on time.
        name: what the log says failed.
        log: the caller's logger, so failures read as the caller's.
        clock, sleep: injectable for tests; monotonic seconds.

    Raises:
        asyncio.CancelledError: only, when the task running it is cancelled.
    """
    next_at = clock()
    while True:
        try:
            await job()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s failed; retrying next tick", name)
        next_at += interval_s
        now = clock()
        if next_at < now:  # overran a whole period: skip the missed ticks rather than burst
            next_at = now
        await sleep(next_at - now)


class TaskSupervisor:
    """The owner of a set of background tasks.

    Args:
        owner: prefixes every log line and task name ("runtime", "sources", "cluster").
        log: the owner's logger.

    Trade-off: a crashed task is logged and remembered, not restarted; loops that must survive a
    failing tick use `every`, whose job errors never end the task.
    """

    def __init__(self, owner: str, log: logging.Logger = logger) -> None:
        self.owner = owner
        self.log = log
        self.tasks: dict[str, asyncio.Task[Any]] = {}
        self.crashes: list[BaseException] = []

    def spawn(self, name: str, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Start `coro` as a task named `<owner>.<name>` and keep it until it ends."""
        task = asyncio.create_task(coro, name=f"{self.owner}.{name}")
        self.tasks[name] = task
        task.add_done_callback(lambda done: self._finished(name, done))
        return task

    def every(self, interval_s: float, job: Job, name: str) -> asyncio.Task[Any]:
        """Start `run_every(interval_s, job)` as a supervised task."""
        return self.spawn(name, run_every(interval_s, job, name=f"{self.owner}: {name}", log=self.log))

    @property
    def all_alive(self) -> bool:
        """Whether there are tasks, none of them has ended and none crashed since the last `take_crash`."""
        return bool(self.tasks) and not self.crashes and all(not task.done() for task in self.tasks.values())

    async def cancel_all(self, timeout_s: float | None = None) -> None:
        """Cancel every task and wait for them, at most `timeout_s` (None: until they end)."""
        tasks = list(self.tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout_s)
            for task in pending:
                self.log.error("%s: task %s did not stop within %.0f s", self.owner, task.get_name(), timeout_s)
        self.tasks.clear()

    def take_crash(self) -> BaseException | None:
        """Return the first crash since the last call (to re-raise at shutdown), forgetting them all."""
        crash = self.crashes[0] if self.crashes else None
        self.crashes.clear()
        return crash

    def _finished(self, name: str, task: asyncio.Task[Any]) -> None:
        if self.tasks.get(name) is task:
            del self.tasks[name]
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            self.log.error("%s: task %s crashed", self.owner, task.get_name(), exc_info=error)
            self.crashes.append(error)
