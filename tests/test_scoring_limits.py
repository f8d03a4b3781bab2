"""The UI's API and anonymous scoring behind the per-client limits, against a real uvicorn.

One app serves the module in a thread of this process, with the real inference service scoring
with the lexicon alone (no model to load): a small REST budget, one scoring turn and no waiting
room, a 4 KB upload limit. Each test is its own client (its own loopback address), so budgets do
not carry over; a test that needs scoring to take a while holds the lexicon's model thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from gradio_client import Client
from gradio_client.utils import QueueError

from core.config import Settings
from testbed.harness import FAST_ENV, MS, free_port, uvicorn_in_this_loop

# Gradio's queue analytics use a pandas option that pandas 3 deprecates; in this process that
# warning would be an error (filterwarnings = error) inside the server thread.
pytestmark = pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning")

TEXT = "Bitcoin ETF inflows hit a record as miners hold"
WAIT_S = 30000 * MS

T = TypeVar("T")


@dataclass
class Served:
    url: str
    parts: Any  # the app's components (compose.Components)

    def client(self, address: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, transport=httpx.HTTPTransport(local_address=address), timeout=WAIT_S)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    import uvicorn

    from app import build_app
    from compose import compose

    port = free_port()
    env = {**FAST_ENV, "ENABLE_UI": "1", "ENABLE_INFERENCE": "1", "MODELS": "lexicon", "LOG_FILE": "-",
           "DATA_DIR": str(tmp_path_factory.mktemp("limits")), "PORT": str(port),
           "REST_RATE_PER_S": "0.05", "REST_BURST": "8", "SCORING_THREADS": "1", "SCORING_QUEUE": "0",
           "MAX_UPLOAD_BYTES": "4096"}
    parts = compose(Settings.from_env(env))
    server = uvicorn.Server(uvicorn.Config(build_app(parts), host="127.0.0.1", port=port, log_config=None))
    thread = threading.Thread(target=server.run, name="uvicorn-under-test", daemon=True)
    thread.start()
    served = Served(f"http://127.0.0.1:{port}", parts)
    deadline = time.monotonic() + WAIT_S
    with served.client("127.0.0.250") as probe:  # its own address: the probes spend nobody's budget
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if probe.get("/health").status_code == 200:
                    break
            time.sleep(0.1)
    try:
        yield served
    finally:
        server.should_exit = True
        thread.join(20)


@contextlib.contextmanager
def scoring_held(served: Served) -> Iterator[None]:
    """Keep the lexicon's model thread busy, so every scoring call waits until the block ends."""
    release = threading.Event()
    executor = served.parts.inference.engines.executors["lexicon"]
    executor.submit(release.wait)
    try:
        yield
    finally:
        release.set()


def in_thread(call: Callable[[], T]) -> Future[T]:
    """Run `call` in a plain thread (not the loop's pool); return its future."""
    done: Future[T] = Future()
    threading.Thread(target=lambda: done.set_result(call()), daemon=True).start()
    return done


def wait_until_admitted(served: Served) -> None:
    deadline = time.monotonic() + WAIT_S
    while served.parts.lane.admitted < 1 and time.monotonic() < deadline:
        time.sleep(10 * MS)


def call_score_text(client: httpx.Client, text: str = TEXT) -> tuple[str, Any]:
    """Call `score_text` the way Gradio's HTTP API does: join, then read the event's stream to its end."""
    joined = client.post("/gradio_api/call/score_text", json={"data": [text, "news"]})
    if joined.status_code != 200:
        return str(joined.status_code), joined.json()
    event = data = ""
    with client.stream("GET", f"/gradio_api/call/score_text/{joined.json()['event_id']}") as stream:
        for line in stream.iter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                data = line.split(":", 1)[1].strip()
                if event in ("complete", "error"):
                    return event, json.loads(data)
    return event, data


def test_score_text_past_the_client_budget_is_refused_with_a_reason(served: Served) -> None:
    with served.client("127.0.0.2") as client:
        outcomes = [call_score_text(client) for _ in range(5)]
    assert [event for event, _ in outcomes[:3]] == ["complete"] * 3  # 3 x (2 + a tenth) of 8 tokens
    event, reason = outcomes[3]
    assert event == "error" and reason["title"] == "Too many requests" and "retry after" in reason["error"]


def test_score_text_is_refused_readably_when_the_scoring_lane_is_full(served: Served) -> None:
    """Refused at the join, before Gradio makes an event of it: a 503 with a reason and a wait."""
    with served.client("127.0.0.3") as first, served.client("127.0.10.3") as second:
        with scoring_held(served):
            waiting = in_thread(lambda: call_score_text(first))
            wait_until_admitted(served)
            status, body = call_score_text(second)
            with pytest.raises(QueueError, match="Queue is full"):  # what gradio_client shows its caller
                Client(served.url + "/", verbose=False).predict(TEXT, "news", api_name="/score_text")
        assert waiting.result(WAIT_S)[0] == "complete"
    assert status == "503" and body["detail"].startswith("Scoring is busy")


def test_upload_over_the_limit_is_refused_with_413(served: Served) -> None:
    with served.client("127.0.0.4") as client:
        small = client.post("/gradio_api/upload", files={"files": ("small.txt", b"x" * 1024)})
        big = client.post("/gradio_api/upload", files={"files": ("big.bin", b"x" * 64 * 1024)})
    assert small.status_code == 200
    assert big.status_code == 413


def test_direct_run_routes_are_closed(served: Served) -> None:
    """`/gradio_api/run/...` would call the function without the queue."""
    with served.client("127.0.0.5") as client:
        reply = client.post("/gradio_api/run/score_text", json={"data": [TEXT, "news"]})
    assert reply.status_code == 404


def test_sentiment_charges_one_token_per_text(served: Served) -> None:
    with served.client("127.0.0.6") as client:
        first = client.post("/api/sentiment", json={"texts": [TEXT] * 8})
        second = client.post("/api/sentiment", json={"texts": [TEXT] * 2})
    assert first.status_code == 200
    assert second.status_code == 429
    assert int(second.headers["Retry-After"]) >= 1


def test_a_batch_larger_than_the_burst_passes_on_a_full_budget_and_leaves_a_debt(served: Served) -> None:
    with served.client("127.0.0.7") as client:
        batch = client.post("/api/sentiment", json={"texts": [TEXT] * 20})
        after = client.get("/api/prices")
    assert batch.status_code == 200 and len(batch.json()["results"]) == 20
    assert after.status_code == 429 and int(after.headers["Retry-After"]) > 200  # 12 tokens owed at 0.05/s


def test_sentiment_is_refused_with_503_busy_when_the_scoring_lane_is_full(served: Served) -> None:
    with served.client("127.0.0.8") as first, served.client("127.0.0.9") as second:
        with scoring_held(served):
            waiting = in_thread(lambda: first.post("/api/sentiment", json={"texts": [TEXT]}))
            wait_until_admitted(served)
            refused = second.post("/api/sentiment", json={"texts": [TEXT]})
        assert waiting.result(WAIT_S).status_code == 200
    assert refused.status_code == 503 and refused.json()["detail"]["code"] == "BUSY"
    assert refused.headers["Retry-After"] == "1"


async def test_news_is_acknowledged_while_scoring_and_default_threads_are_all_blocked(tmp_path: Path) -> None:
    """The news desk commits on a thread of its own: no anonymous work queued elsewhere can hold it up."""
    from app import build_app
    from compose import compose

    env = {**FAST_ENV, "DATA_DIR": str(tmp_path), "LOG_FILE": "-"}
    parts = compose(Settings.from_env(env))
    application = build_app(parts)
    release = threading.Event()
    loop = asyncio.get_running_loop()
    async with application.router.lifespan_context(application), uvicorn_in_this_loop(application) as port:
        lane = parts.lane
        blockers = [loop.run_in_executor(lane.executor, release.wait) for _ in range(lane.concurrency)]
        blockers += [loop.run_in_executor(None, release.wait) for _ in range(64)]  # every default thread
        try:
            acked = in_thread(lambda: httpx.post(  # not from the loop's pool: that is what is blocked
                f"http://127.0.0.1:{port}/api/news", timeout=WAIT_S,
                headers={"Authorization": f"Bearer {FAST_ENV['ADMIN_TOKEN']}"},
                json={"title": "Acknowledged", "description": "d", "source": "Test Wire",
                      "url": "https://news.example/blocked-pools"}))
            deadline = loop.time() + WAIT_S
            while not acked.done() and loop.time() < deadline:
                await asyncio.sleep(0.05)
            assert acked.done(), "the news POST did not complete while the other pools were blocked"
            assert acked.result().status_code == 201
        finally:
            release.set()
            await asyncio.gather(*blockers)
