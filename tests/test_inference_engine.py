"""Dynamic batching: batch limits, ordering, overload, errors, and a free event loop."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from core.lane import ScoringLane
from inference.engine import BatchEngine
from inference.errors import BatchSizeMismatch, EngineOverloaded, EngineStopped

MS = 0.001  # one millisecond in seconds; waits below are multiples of it


class Doubler:
    """Known outputs (len(text) * 2 + 1), and a record of every batch it saw."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.batches: list[list[str]] = []
        self.delay_s = delay_s

    def __call__(self, texts: list[str]) -> list[int]:
        self.batches.append(list(texts))
        time.sleep(self.delay_s)
        return [len(text) * 2 + 1 for text in texts]


async def started(engine: BatchEngine) -> BatchEngine:
    engine.start()
    return engine


async def test_engine_concurrent_callers_share_batches_of_max_batch():
    model = Doubler()
    engine = await started(BatchEngine(model, max_batch=4, max_wait_ms=200))
    texts = ["x" * n for n in range(1, 9)]
    outputs = await asyncio.gather(*(engine.submit([text]) for text in texts))
    await engine.stop()
    assert outputs == [[len(text) * 2 + 1] for text in texts]
    assert [len(batch) for batch in model.batches] == [4, 4]


async def test_engine_lone_caller_is_not_held_for_max_wait():
    """Nothing else queued and no batch just ended: the text leaves at once, not after 60 s."""
    model = Doubler()
    engine = await started(BatchEngine(model, max_batch=64, max_wait_ms=60_000))
    started_at = time.monotonic()
    assert await engine.submit(["abc"]) == [7]
    elapsed = time.monotonic() - started_at
    await engine.stop()
    assert elapsed < 30.0  # the old rule held it for the whole max_wait
    assert model.batches == [["abc"]]


async def test_engine_sequential_caller_is_never_held():
    model = Doubler()
    engine = await started(BatchEngine(model, max_batch=64, max_wait_ms=60_000))
    started_at = time.monotonic()
    for text in ("a", "bb", "ccc"):
        await engine.submit([text])
    elapsed = time.monotonic() - started_at
    await engine.stop()
    assert elapsed < 30.0 and model.batches == [["a"], ["bb"], ["ccc"]]


async def test_engine_callers_coming_back_after_a_batch_share_the_next_one():
    """Right after a batch of 4, the next batch waits (up to max_wait) for the 4 callers to return."""
    model = Doubler()
    engine = await started(BatchEngine(model, max_batch=8, max_wait_ms=30_000))

    async def caller(text: str) -> None:
        for _ in range(2):
            await engine.submit([text])
            await asyncio.sleep(0)

    await asyncio.gather(*(caller(text) for text in ("a", "b", "c", "d")))
    await engine.stop()
    assert [len(batch) for batch in model.batches] == [4, 4]


async def test_engine_busy_s_measures_the_call_in_flight():
    release = threading.Event()
    engine = await started(BatchEngine(lambda texts: [release.wait(5.0)] * len(texts), max_wait_ms=0))
    assert engine.busy_s == 0.0
    call = asyncio.ensure_future(engine.submit(["a"]))
    await asyncio.sleep(50 * MS)
    busy = engine.busy_s
    release.set()
    await call
    await engine.stop()
    assert busy > 0.0 and engine.busy_s == 0.0


async def test_engine_sorts_batch_by_length_and_keeps_caller_order():
    model = Doubler()
    engine = await started(BatchEngine(model, max_batch=8, max_wait_ms=50))
    texts = ["ccccc", "a", "bbb", "dd"]
    assert await engine.submit(texts) == [11, 3, 7, 5]
    await engine.stop()
    assert model.batches == [["a", "dd", "bbb", "ccccc"]]


async def test_engine_full_queue_raises_overloaded():
    engine = await started(BatchEngine(Doubler(delay_s=0.2), max_batch=2, max_queue=4, max_wait_ms=0))
    first = asyncio.ensure_future(engine.submit(["a", "b"]))
    await asyncio.sleep(20 * MS)  # the first batch is now running, the queue is empty
    waiting = asyncio.ensure_future(engine.submit(["c", "d", "e", "f"]))
    await asyncio.sleep(0)
    with pytest.raises(EngineOverloaded, match="max_queue=4"):
        await engine.submit(["g"])
    assert await first == [3, 3] and await waiting == [3, 3, 3, 3]
    await engine.stop()


async def test_engine_wrong_output_count_raises_mismatch():
    engine = await started(BatchEngine(lambda texts: [1], max_batch=4, max_wait_ms=10))
    with pytest.raises(BatchSizeMismatch, match="1 outputs for 2 texts"):
        await engine.submit(["a", "b"])
    await engine.stop()


async def test_engine_model_error_reaches_every_caller_of_the_batch():
    def broken(texts: list[str]) -> list[int]:
        raise RuntimeError("CUDA error: device-side assert")

    engine = await started(BatchEngine(broken, max_batch=4, max_wait_ms=20))
    outcomes = await asyncio.gather(engine.submit(["a"]), engine.submit(["b"]), return_exceptions=True)
    await engine.stop()
    assert [type(outcome) for outcome in outcomes] == [RuntimeError, RuntimeError]


async def test_engine_stop_fails_waiting_requests():
    engine = await started(BatchEngine(Doubler(delay_s=0.2), max_batch=1, max_wait_ms=0))
    first = asyncio.ensure_future(engine.submit(["a"]))
    second = asyncio.ensure_future(engine.submit(["b"]))
    await asyncio.sleep(20 * MS)
    await engine.stop()
    with pytest.raises(EngineStopped):
        await second
    with pytest.raises(EngineStopped):
        await first
    with pytest.raises(EngineStopped, match="start"):
        await engine.submit(["c"])


async def test_engine_model_runs_off_the_event_loop():
    """While the model blocks its thread for 200 ms, the loop keeps ticking."""
    loop_thread = threading.get_ident()
    seen_threads: list[int] = []

    def slow(texts: list[str]) -> list[int]:
        seen_threads.append(threading.get_ident())
        time.sleep(0.2)
        return [0] * len(texts)

    engine = await started(BatchEngine(slow, max_batch=1, max_wait_ms=0))
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(10 * MS)
            ticks += 1

    tick_task = asyncio.ensure_future(ticker())
    await engine.submit(["a"])
    tick_task.cancel()
    await engine.stop()
    assert ticks >= 5 and seen_threads and loop_thread not in seen_threads


def test_engine_rejects_bad_limits():
    with pytest.raises(ValueError, match="max_queue"):
        BatchEngine(Doubler(), max_batch=8, max_queue=4)


class _BrokenWorker(BatchEngine[int]):
    async def _next_batch(self):  # type: ignore[override]
        await asyncio.sleep(10 * MS)
        raise RuntimeError("worker bug")


async def test_engine_worker_crash_is_logged_and_fails_waiting_callers(caplog):
    engine = await started(_BrokenWorker(Doubler(), max_batch=4, max_wait_ms=5))
    with caplog.at_level("ERROR", logger="inference.engine"), pytest.raises(EngineStopped, match="worker died"):
        await asyncio.wait_for(engine.submit(["abc"]), 2)
    with pytest.raises(RuntimeError, match="worker bug"):  # and stop() raises it again, for the lifespan
        await engine.stop()
    assert "worker task died" in caplog.text and "worker bug" in caplog.text


async def test_engine_serves_the_apps_own_texts_before_anonymous_ones_queued_earlier():
    """A news text waits for the batch running now, never for lane texts, and is not batched with them."""
    release = threading.Event()
    seen: list[list[str]] = []

    def predict(texts: list[str]) -> list[int]:
        seen.append(list(texts))
        release.wait(5.0)
        return [len(text) for text in texts]

    engine = await started(BatchEngine(predict, max_wait_ms=0))
    lane = ScoringLane(concurrency=2, waiting=0)

    async def anonymous(text: str) -> list[int]:
        async with lane.admit():
            return await engine.submit([text])

    running = asyncio.ensure_future(engine.submit(["running"]))
    await asyncio.sleep(20 * MS)  # its batch holds the model now
    anonymous_calls = [asyncio.ensure_future(anonymous(f"anonymous {i}")) for i in range(2)]
    await asyncio.sleep(20 * MS)
    news = asyncio.ensure_future(engine.submit(["news"]))
    await asyncio.sleep(20 * MS)
    release.set()
    await asyncio.gather(running, news, *anonymous_calls)
    await engine.stop()
    lane.shutdown()
    assert seen == [["running"], ["news"], ["anonymous 0", "anonymous 1"]]
