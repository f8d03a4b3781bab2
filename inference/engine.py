"""Per-model dynamic batching: many callers, one model, batches that close on size or time.

Callers `await engine.submit(texts)`; every text becomes one queued request with its own future.
A worker task takes up to `max_batch` requests, sorts them by length (less padding), runs the
model in an executor thread so the event loop never blocks, and resolves each future with its own
output. The worker never idles the model while texts wait, except in one case: right after a
batch, the callers it answered tend to come back, so the next batch may stay open up to
`max_wait_ms` for as many texts as the last one held. A lone caller after a quiet spell leaves at
once (waiting for company that is not coming cost every sequential caller `max_wait_ms`).

Texts scored for anyone (inside `core.lane.ScoringLane.admit()`) wait in a queue of their own,
served only when none of the app's own texts (news, evaluation) wait: a news item then waits for
the batch running now, never for anonymous texts queued before it, and is never padded to their
length in one batch.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from core.lane import scoring_for_anyone

from .errors import BatchSizeMismatch, EngineOverloaded, EngineStopped

__all__ = ["BatchEngine"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class _Request(Generic[T]):
    text: str
    future: asyncio.Future[T]
    queued_at: float = field(default_factory=time.monotonic)


class BatchEngine(Generic[T]):
    """Queue texts from all callers and run them through `predict` in batches.

    Args:
        predict: blocking function, list of texts -> one output per text, in order.
        name: used in logs and error messages (the model id).
        max_batch: the most texts per model call. A larger batch sorts into more homogeneous
            lengths (the model may split it into micro-batches) but the first text waits for the
            whole call; 32 with micro-batches of 8 was the best on 2 CPU cores for tweet-length
            texts (docs/inference.md); GPUs want 64 or more.
        max_wait_ms: how long the oldest queued text may wait for company, and only when company
            is expected: within `max_wait_ms` of the end of a batch, while fewer texts wait than
            that batch held. A lone caller after a quiet spell is never held; under load the
            texts that queue while a batch runs leave together as soon as it ends.
        max_queue: the most texts waiting (not yet running). Beyond it `submit()` raises
            `EngineOverloaded` at once instead of growing latency without bound.
        executor: where `predict` runs; None uses the loop's default thread pool. Give each model
            its own single-thread executor (`ModelExecutor`): a slow or hung model then holds up
            only its own queue.
        sort_by_length: sort each batch by text length before calling `predict`.

    The engine has no retry and no priority: a failing `predict` fails every request of its batch,
    and the service above decides where those texts go next.
    """

    def __init__(
        self,
        predict: Callable[[list[str]], Sequence[T]],
        *,
        name: str = "model",
        max_batch: int = 32,
        max_wait_ms: float = 5.0,
        max_queue: int = 2048,
        executor: Executor | None = None,
        sort_by_length: bool = True,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {max_wait_ms}")
        if max_queue < max_batch:
            raise ValueError(f"max_queue ({max_queue}) must be >= max_batch ({max_batch})")
        self._predict = predict
        self.name = name
        self.max_batch = max_batch
        self.max_wait_s = max_wait_ms / 1000.0
        self.max_queue = max_queue
        self._executor = executor
        self._sort_by_length = sort_by_length
        self._pending: deque[_Request[T]] = deque()  # the app's own texts: served first
        self._deferred: deque[_Request[T]] = deque()  # texts scored for anyone
        self._wakeup: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        self._stopping = False
        self.batches_run = 0
        self.texts_run = 0
        self.largest_batch = 0
        self._last_batch_size = 0
        self._last_batch_ended = float("-inf")
        self._running_since: float | None = None

    @property
    def queued(self) -> int:
        """Number of texts waiting for a batch."""
        return len(self._pending) + len(self._deferred)

    @property
    def busy_s(self) -> float:
        """Seconds the model call now in flight has been running; 0.0 when idle."""
        return 0.0 if self._running_since is None else time.monotonic() - self._running_since

    @property
    def is_running(self) -> bool:
        """True between `start()` and `stop()`."""
        return self._worker is not None and not self._worker.done()

    def start(self) -> None:
        """Start the worker task on the running loop (idempotent)."""
        if self.is_running:
            return
        self._stopping = False
        self._wakeup = asyncio.Event()
        self._worker = asyncio.get_running_loop().create_task(self._run(), name=f"batch-engine:{self.name}")
        self._worker.add_done_callback(self._worker_ended)

    def _worker_ended(self, task: asyncio.Task[None]) -> None:
        # A bug in the worker must not leave callers waiting forever, nor go unnoticed.
        if task.cancelled() or task.exception() is None:
            return
        logger.error("engine %s: worker task died; failing %d waiting requests", self.name, self.queued,
                     exc_info=task.exception())
        self._fail_waiting(f"{self.name}: worker died")

    async def stop(self) -> None:
        """Stop the worker and fail every waiting request with `EngineStopped`.

        A batch already running in the executor finishes in its thread; its callers get
        `EngineStopped` instead of the answer.
        """
        self._stopping = True
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.cancel()
            try:
                await worker
            except asyncio.CancelledError:
                pass
        self._fail_waiting(f"{self.name}: engine stopped")

    def _fail_waiting(self, reason: str) -> None:
        for queue in (self._pending, self._deferred):
            while queue:
                request = queue.popleft()
                if not request.future.done():
                    request.future.set_exception(EngineStopped(reason))

    async def submit(self, texts: Sequence[str]) -> list[T]:
        """Queue texts and wait for their outputs, in the same order.

        Raises:
            EngineOverloaded: the queue cannot take all the texts now (nothing was queued).
            EngineStopped: the engine is not running, or stopped while waiting.
            BatchSizeMismatch: the model returned the wrong number of outputs.
            Exception: whatever `predict` raised for a batch holding one of the texts.
        """
        if not texts:
            return []
        if self._stopping or not self.is_running or self._wakeup is None:
            raise EngineStopped(f"{self.name}: engine is not running; call start() first")
        if self.queued + len(texts) > self.max_queue:
            raise EngineOverloaded(
                f"{self.name}: queue full ({self.queued} queued + {len(texts)} new > "
                f"max_queue={self.max_queue}); retry later or raise max_queue"
            )
        loop = asyncio.get_running_loop()
        requests = [_Request[T](text=text, future=loop.create_future()) for text in texts]
        (self._deferred if scoring_for_anyone() else self._pending).extend(requests)
        self._wakeup.set()
        try:
            outcomes = await asyncio.gather(*(request.future for request in requests), return_exceptions=True)
        except asyncio.CancelledError:
            # The caller gave up: the worker skips requests whose future is already done.
            for request in requests:
                request.future.cancel()
            raise
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        return list(outcomes)  # type: ignore[arg-type]

    def _expected_company(self, now: float) -> int:
        # Callers answered by the last batch tend to submit again within a few milliseconds;
        # after a quiet spell of max_wait nobody is known to be coming.
        if now - self._last_batch_ended > self.max_wait_s:
            return 1
        return min(self._last_batch_size, self.max_batch)

    async def _next_batch(self) -> list[_Request[T]]:
        assert self._wakeup is not None
        while not self._pending and not self._deferred:
            self._wakeup.clear()
            await self._wakeup.wait()
        await asyncio.sleep(0)  # let callers woken in the same loop turn queue their texts too
        queue = self._pending or self._deferred
        # The deadline counts from when the oldest request was queued, so a batch that waited
        # behind a running one leaves at once.
        deadline = queue[0].queued_at + self.max_wait_s
        while len(queue) < self._expected_company(time.monotonic()) and not (queue is self._deferred
                                                                               and self._pending):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._wakeup.clear()
            try:
                async with asyncio.timeout(remaining):
                    await self._wakeup.wait()
            except TimeoutError:
                break
        queue = self._pending or self._deferred  # the app's own texts may have come meanwhile
        batch: list[_Request[T]] = []
        while queue and len(batch) < self.max_batch:
            request = queue.popleft()
            if not request.future.done():
                batch.append(request)
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._next_batch()
            if not batch:
                continue
            if self._sort_by_length:
                batch.sort(key=lambda request: len(request.text))
            texts = [request.text for request in batch]
            self._running_since = time.monotonic()
            try:
                outputs = await loop.run_in_executor(self._executor, self._predict, texts)
            except asyncio.CancelledError:
                for request in batch:
                    if not request.future.done():
                        request.future.set_exception(EngineStopped(f"{self.name}: engine stopped"))
                raise
            except Exception as exc:  # the model's own error, handed to every caller of the batch
                logger.warning("engine %s: batch of %d failed: %r", self.name, len(batch), exc)
                for request in batch:
                    if not request.future.done():
                        request.future.set_exception(exc)
                continue
            finally:
                self._running_since = None
                self._last_batch_ended = time.monotonic()
                self._last_batch_size = len(batch)
            if len(outputs) != len(batch):
                error = BatchSizeMismatch(
                    f"{self.name}: model returned {len(outputs)} outputs for {len(batch)} texts; "
                    "expected one output per text"
                )
                logger.error("engine %s: %s", self.name, error)
                for request in batch:
                    if not request.future.done():
                        request.future.set_exception(error)
                continue
            self.batches_run += 1
            self.texts_run += len(batch)
            self.largest_batch = max(self.largest_batch, len(batch))
            for request, output in zip(batch, outputs, strict=True):
                if not request.future.done():
                    request.future.set_result(output)
