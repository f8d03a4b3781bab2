"""`ScoringLane`: where anonymous scoring waits and runs, apart from the news desk's own work.

The playground and `POST /api/sentiment` score for anyone. They go through one lane: at most
`concurrency` of their requests score at once, `waiting` more wait their turn, and the rest are
refused at once (`LaneFull`, a readable "busy, retry in N s") instead of growing a queue that
delays everyone. Their blocking work (token counting) runs on the lane's own `threads`, never on
the loop's default pool, and the news desk commits on a thread of its own (`desk/news.py`): an
anonymous flood cannot delay a durable write. The news desk's scoring does not enter the lane, so
a news item waits in the model batchers behind at most `concurrency` anonymous requests; and
while a turn runs, `scoring_for_anyone()` is true in its context, so the batchers serve the app's
own texts first and never pad them into a batch of anonymous ones (`inference/engine.py`).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import ParamSpec, TypeVar

__all__ = ["RETRY_AFTER_S", "LaneFull", "ScoringLane", "scoring_for_anyone"]

P = ParamSpec("P")
T = TypeVar("T")

_FOR_ANYONE: ContextVar[bool] = ContextVar("scoring_for_anyone", default=False)


def scoring_for_anyone() -> bool:
    """Whether the running code scores for an anonymous caller (inside `ScoringLane.admit()`)."""
    return _FOR_ANYONE.get()


# A turn takes one scoring call (tens to hundreds of milliseconds on a CPU): a second is a fair hint.
RETRY_AFTER_S = 1.0


class LaneFull(Exception):
    """Every turn of the anonymous scoring lane is taken or promised; retry after `retry_after_s`."""

    def __init__(self, message: str, retry_after_s: float = RETRY_AFTER_S) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ScoringLane:
    """A bounded lane for anonymous scoring: bounded concurrency, a bounded wait, its own threads.

    Args:
        concurrency: requests scoring at once.
        waiting: requests waiting for a turn; one more is refused with `LaneFull`.
        threads: worker threads for the requests' blocking work (`run()`).
    """

    def __init__(self, *, concurrency: int = 2, waiting: int = 8, threads: int = 2) -> None:
        if concurrency < 1 or waiting < 0 or threads < 1:
            raise ValueError(f"expected concurrency >= 1, waiting >= 0, threads >= 1; "
                             f"got {concurrency}, {waiting}, {threads}")
        self.concurrency = concurrency
        self.waiting = waiting
        self.executor = ThreadPoolExecutor(threads, thread_name_prefix="scoring")
        self._turns: asyncio.Semaphore | None = None  # made in the loop that uses it
        self._admitted = 0  # scoring or waiting
        self.refused = 0

    @property
    def admitted(self) -> int:
        """Requests scoring or waiting now."""
        return self._admitted

    @property
    def is_full(self) -> bool:
        """Whether `admit()` would refuse now."""
        return self._admitted >= self.concurrency + self.waiting

    @asynccontextmanager
    async def admit(self) -> AsyncIterator[None]:
        """Wait for a turn and hold it for the block.

        Raises:
            LaneFull: `concurrency + waiting` requests are already in; nothing was queued.
        """
        if self.is_full:
            self.refused += 1
            raise LaneFull(f"Scoring is busy: {self.concurrency} requests are scoring and {self.waiting} "
                           f"waiting, the most this server takes; retry in {RETRY_AFTER_S:g} s")
        if self._turns is None:
            self._turns = asyncio.Semaphore(self.concurrency)
        self._admitted += 1
        try:
            async with self._turns:
                marked = _FOR_ANYONE.set(True)  # seen by the tasks the block starts, too
                try:
                    yield
                finally:
                    _FOR_ANYONE.reset(marked)
        finally:
            self._admitted -= 1

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run blocking `fn` on the lane's threads and return its result."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, functools.partial(fn, *args, **kwargs))

    def shutdown(self) -> None:
        """Stop the threads once their current work ends; queued work is dropped."""
        self.executor.shutdown(wait=False, cancel_futures=True)
