"""Each model on its own thread: a hung model delays only its own callers and owns its timeouts."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator

import pytest

from inference import InferenceService
from inference.engine import BatchEngine
from inference.executors import ModelExecutor
from testbed import inference_fixtures
from testbed.inference_fixtures import BERT_POSNEG, CORPUS, ROBERTA_NEGPOS, running_service

MS = 0.001
LOAD_TIMEOUT_S = 60.0
HANG_LIMIT_S = 60.0  # the hung model is released at the end of each test, long before this

tiny_hub = inference_fixtures.tiny_hub
offline_hub = inference_fixtures.offline_hub


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Set at teardown, so a hung model's thread always ends."""
    event = threading.Event()
    yield event
    event.set()


def hang_until(release: threading.Event):
    def hang(texts: list[str]) -> list[dict[str, float]]:
        release.wait(HANG_LIMIT_S)
        return [{"bearish": 1.0, "neutral": 0.0, "bullish": 0.0} for _ in texts]

    return hang


async def hang_model(service: InferenceService, model_id: str, release: threading.Event) -> None:
    """Swap a loaded model's predict for one that blocks its thread until `release` is set."""
    service._slots[model_id].model.predict_probs = hang_until(release)
    await service.engines.engines[model_id].stop()
    service.engines.start(service._slots[model_id])


async def test_model_executor_runs_calls_in_order_on_one_thread():
    executor = ModelExecutor("model:test")
    seen: list[tuple[int, str]] = []
    futures = [executor.submit(lambda n=n: seen.append((n, threading.current_thread().name))) for n in range(3)]
    for future in futures:
        future.result(timeout=10)
    executor.shutdown()
    assert seen == [(0, "model:test"), (1, "model:test"), (2, "model:test")]


async def test_engines_on_own_executors_answer_while_another_hangs(release):
    hung = BatchEngine(hang_until(release), name="hung", max_wait_ms=0, executor=ModelExecutor("model:hung"))
    fast = BatchEngine(
        lambda texts: [len(t) for t in texts], name="fast", max_wait_ms=0, executor=ModelExecutor("model:fast")
    )
    hung.start()
    fast.start()
    stuck = asyncio.ensure_future(hung.submit(["a"]))
    await asyncio.sleep(20 * MS)
    assert await asyncio.wait_for(fast.submit(["abc"]), 10.0) == [3]
    assert not stuck.done()
    release.set()
    await stuck
    await hung.stop()
    await fast.stop()


async def test_service_hung_model_delays_only_its_own_callers(offline_hub, tmp_path, release):
    service = await running_service([BERT_POSNEG, ROBERTA_NEGPOS], tmp_path, LOAD_TIMEOUT_S, call_timeout_s=0.5)
    await hang_model(service, BERT_POSNEG, release)
    stuck = asyncio.ensure_future(service.score(CORPUS[:1], model=BERT_POSNEG, fallback=False))
    await asyncio.sleep(20 * MS)
    [result] = await asyncio.wait_for(service.score(CORPUS[:1], model=ROBERTA_NEGPOS, fallback=False), 10.0)
    assert result.model == ROBERTA_NEGPOS and not stuck.done()
    release.set()
    await asyncio.gather(stuck, return_exceptions=True)
    await service.stop()


async def test_service_timeouts_are_charged_to_the_hung_model(offline_hub, tmp_path, release):
    service = await running_service([BERT_POSNEG, ROBERTA_NEGPOS], tmp_path, LOAD_TIMEOUT_S, call_timeout_s=0.3)
    await hang_model(service, BERT_POSNEG, release)
    results = await service.score(CORPUS[:2])  # the ensemble: the hung member times out, the other answers
    models = {m["id"]: m for m in service.describe_models()}
    release.set()
    await service.stop()
    assert {r.model for r in results} == {ROBERTA_NEGPOS}
    assert models[BERT_POSNEG]["failures"] == 1 and "timeout" in models[BERT_POSNEG]["last_error"]
    assert models[ROBERTA_NEGPOS]["failures"] == 0 and models[ROBERTA_NEGPOS]["successes"] == 1


async def test_service_stalled_model_fails_fast_after_its_timeout(offline_hub, tmp_path, release):
    """Once a call has overrun the timeout, new callers skip the model at once instead of queueing."""
    service = await running_service([BERT_POSNEG], tmp_path, LOAD_TIMEOUT_S, call_timeout_s=0.2)
    await hang_model(service, BERT_POSNEG, release)
    [first] = await service.score(CORPUS[:1], model=BERT_POSNEG)  # waits out the timeout, then the lexicon
    [second] = await service.score(CORPUS[:1], model=BERT_POSNEG)
    last_error = {m["id"]: m for m in service.describe_models()}[BERT_POSNEG]["last_error"]
    release.set()
    await service.stop()
    assert (first.model, second.model) == ("lexicon", "lexicon")
    assert last_error.startswith("stalled")


def test_model_executor_runs_below_the_callers_priority():
    def own_nice() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    executor = ModelExecutor("model:nice-test", nice=5)
    try:
        assert executor.submit(own_nice).result(timeout=10) == own_nice() + 5
    finally:
        executor.shutdown()


async def test_service_model_threads_run_below_the_event_loop(offline_hub):
    service = await running_service([BERT_POSNEG], None, 60)
    loop_nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    model_nice = await asyncio.get_running_loop().run_in_executor(
        service.engines.executors[BERT_POSNEG], os.getpriority, os.PRIO_PROCESS, 0
    )
    await service.stop()
    assert model_nice > loop_nice
