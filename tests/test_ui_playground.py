"""The Models tab's playground in Chromium: scores per model next to the ensemble's, or a clear refusal.

The first test runs the app in this process with a stand-in inference service built in place of the
real one (its interface: `score(texts, domain, model)`, `describe_models()`), so the chart and table are checked
whatever the state of inference/. The second runs the real app with ENABLE_INFERENCE=1.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.config import Settings
from core.records import SentimentResult
from testbed.harness import FAST_ENV, MS, free_port, running_app
from tests.browser import new_page, screenshot

# Gradio 6.31's queue analytics use a pandas option that pandas 3 deprecates; in this process that
# warning would be an error (filterwarnings = error) inside the server thread.
pytestmark = [pytest.mark.browser, pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning")]

WAIT_MS = 30000 * MS * 1000  # Playwright takes milliseconds
TEXT = "Bitcoin ETF inflows hit a record as miners hold"

PROBS = {
    "tiny/bull-bert": {"bearish": 0.1, "neutral": 0.2, "bullish": 0.7},
    "lexicon": {"bearish": 0.2, "neutral": 0.5, "bullish": 0.3},
}


class StandInInference:
    """Answers like the inference service, with fixed probabilities per model."""

    def __init__(self) -> None:
        self.calls: list[tuple[tuple[str, ...], str, str | None]] = []

    @property
    def model_ids(self) -> list[str]:
        return [model["id"] for model in self.describe_models()]

    def describe_models(self) -> list[dict[str, Any]]:
        base = {
            "type": "sentiment",
            "status": "available",
            "success_rate": 100.0,
            "avg_response_time": 12.5,
            "p95_ms": 31.0,
            "last_used": "2025-12-08T10:30:00Z",
            "error": None,
            "device": "cpu",
            "calls": 42,
        }
        return [
            {**base, "id": "tiny/bull-bert"},
            {**base, "id": "lexicon", "avg_response_time": 0.4},
            {
                **base,
                "id": "ProsusAI/finbert",
                "status": "failed",
                "success_rate": None,
                "calls": 0,
                "avg_response_time": None,
                "p95_ms": None,
                "last_used": None,
                "error": "not in the local cache and HF_HUB_OFFLINE=1",
            },
        ]

    def evaluation_results(self) -> list[dict[str, Any]]:
        return [
            {
                "model": "tiny/bull-bert",
                "dataset": "fiqa_sentiment (test)",
                "accuracy": 0.71,
                "macro_f1": 0.66,
                "n": 200,
            }
        ]

    async def score(
        self, texts: list[str], domain: str = "news", model: str | None = None
    ) -> list[SentimentResult]:
        self.calls.append((tuple(texts), domain, model))
        if model is None:
            probs = {k: (PROBS["tiny/bull-bert"][k] + PROBS["lexicon"][k]) / 2 for k in PROBS["lexicon"]}
        else:
            probs = PROBS[model]
        label = max(probs, key=probs.__getitem__)
        return [
            SentimentResult(
                label=label,
                score=probs["bullish"] - probs["bearish"],
                confidence=probs[label],
                probs=probs,
                model=model or "ensemble of 2",
            )
            for _ in texts
        ]

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


@pytest.fixture
def stand_in_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, StandInInference]]:
    """The real app served by uvicorn in a thread of this process, the stand-in built as its inference service."""
    import uvicorn

    from app import build_app
    from compose import compose

    inference = StandInInference()
    monkeypatch.setattr("inference.InferenceService", lambda *_args, **_kwargs: inference)
    port = free_port()
    env = {**FAST_ENV, "ENABLE_UI": "1", "ENABLE_INFERENCE": "1", "DATA_DIR": str(tmp_path), "LOG_FILE": "-",
           "PORT": str(port)}
    application = build_app(compose(Settings.from_env(env)))
    server = uvicorn.Server(
        uvicorn.Config(application, host="127.0.0.1", port=port, log_config=None, ws="websockets-sansio")
    )
    thread = threading.Thread(target=server.run, name="uvicorn-under-test", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30000 * MS
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    try:
        yield url, inference
    finally:
        server.should_exit = True
        thread.join(20)


def test_playground_shows_each_model_next_to_the_ensemble(
    browser: Any, stand_in_app: tuple[str, Any]
) -> None:
    url, inference = stand_in_app
    page = new_page(browser)
    page.goto(url + "/")
    page.get_by_role("tab", name="Models").click()
    page.locator('#models-table tr[data-model="ProsusAI/finbert"]').wait_for(timeout=WAIT_MS)
    assert "HF_HUB_OFFLINE" in page.locator('#models-table tr[data-model="ProsusAI/finbert"]').inner_text()
    page.locator("#evaluation-table").wait_for(timeout=WAIT_MS)
    page.locator("#playground-text textarea").fill(TEXT)
    page.locator("#playground-score").click()
    page.locator('#playground-results tr[data-model="ensemble"]').wait_for(timeout=WAIT_MS)
    rows = page.locator("#playground-results tbody tr").all_inner_texts()
    assert [r.split()[0] for r in rows] == ["ensemble", "tiny/bull-bert", "lexicon"]
    assert "bullish" in rows[1] and "+0.600" in rows[1]
    page.wait_for_function(  # the chart draws after the table arrives
        "() => document.querySelectorAll('#playground-bars .legend .legendtext').length === 3",
        timeout=WAIT_MS,
    )
    legend = page.locator("#playground-bars .legend .legendtext").all_text_contents()
    assert legend == ["bearish", "neutral", "bullish"]
    assert {model for _, _, model in inference.calls} == {None, "tiny/bull-bert", "lexicon"}
    screenshot(page, "tab-models-playground")
    page.close()


def test_playground_scores_with_the_real_inference_layer(browser: Any, tmp_path: Path) -> None:
    with running_app(tmp_path, ENABLE_UI="1", ENABLE_INFERENCE="1") as app:
        page = new_page(browser)
        page.goto(app.http + "/")
        page.get_by_role("tab", name="Models").click()
        page.locator("#playground-text textarea").fill(TEXT)
        page.locator("#playground-score").click()
        page.locator("#playground-results, #playground-off").first.wait_for(timeout=WAIT_MS)
        if page.locator("#playground-off").count():
            page.close()
            pytest.skip(
                "ENABLE_INFERENCE=1 but runtime.inference is None: the inference layer is not wired yet"
            )
        rows = page.locator("#playground-results tbody tr").all_inner_texts()
        assert rows[0].startswith("ensemble") and "failed" not in rows[0]
        screenshot(page, "tab-models-playground-real")
        page.close()
