"""The real app lists every catalog model, picks its default set by measurement, and lets an operator
load and unload models while it runs (`POST /api/models/{id}/load|unload`), with download progress."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from inference.catalog import CATALOG
from testbed.harness import FAST_ENV, MS, AppProcess, free_port
from testbed.hub_standin import StandinHub, build_catalog_checkpoint, running_hub
from testbed.inference_fixtures import build_tiny_classifier

pytestmark = pytest.mark.slow

ADMIN = {"Authorization": f"Bearer {FAST_ENV['ADMIN_TOKEN']}"}
SETTLE_S = 180_000 * MS
# Over huggingface_hub's 10 MiB write chunk, so a download stalled half-way has bytes on disk.
MEDIUM_BERT = {"vocab_size": 100_000, "hidden_size": 64, "intermediate_size": 128, "max_position_embeddings": 128}


@contextlib.contextmanager
def _app(data_dir: Path, hub: StandinHub, **env: str) -> Iterator[AppProcess]:
    environment = {
        **FAST_ENV,
        "ENABLE_INFERENCE": "1",
        "HF_ENDPOINT": hub.endpoint,
        "HF_HUB_OFFLINE": "0",
        "HF_HUB_CACHE": str(data_dir / "hub-cache"),
        "HF_HUB_DOWNLOAD_TIMEOUT": "60",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        **env,
    }
    app = AppProcess(port=free_port(), data_dir=data_dir, env=environment)
    try:
        app.start(timeout=240_000 * MS)
        yield app
    finally:
        app.stop()


def _models(app: AppProcess) -> dict[str, Any]:
    return httpx.get(f"{app.http}/api/models", timeout=10).json()  # type: ignore[no-any-return]


def _wait(app: AppProcess, done: Any, timeout_s: float = SETTLE_S) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        body = _models(app)
        if done(body) or time.monotonic() > deadline:
            return body
        time.sleep(0.1)


def _by_id(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {model["id"]: model for model in body["models"]}


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandinHub]:
    """Tiny CryptoBERT and FinTwitBERT stand-ins, and a larger FinBERT whose weights stall half-way."""
    root = tmp_path_factory.mktemp("admin-models")
    served = StandinHub(stall_s=60.0)
    for repo_id in ("ElKulako/cryptobert", "StephanAkkerman/FinTwitBERT-sentiment"):
        served.add_dir(repo_id, build_catalog_checkpoint(root / repo_id.replace("/", "--"), repo_id))
    labels = {0: "positive", 1: "negative", 2: "neutral"}
    served.add_dir("ProsusAI/finbert", build_tiny_classifier("bert", root / "finbert", labels, dims=MEDIUM_BERT))
    served.faults["ProsusAI/finbert"] = "stall"
    with running_hub(served):
        yield served


@pytest.fixture(scope="module")
def operated(hub: StandinHub, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppProcess]:
    """The app with MODELS naming the lexicon alone: every catalog model is skipped until asked for."""
    with _app(tmp_path_factory.mktemp("operated"), hub, MODELS="lexicon") as app:
        _wait(app, lambda body: body["loading"] == 0)
        yield app


def test_default_start_lists_every_catalog_model_and_loads_what_the_budget_fits(tmp_path):
    served = StandinHub()
    served.add_dir("ElKulako/cryptobert", build_catalog_checkpoint(tmp_path / "src", "ElKulako/cryptobert"))
    (tmp_path / "app").mkdir()
    with running_hub(served), _app(tmp_path / "app", served) as app:
        body = _wait(app, lambda body: body["loading"] == 0)
    models = _by_id(body)
    assert set(CATALOG) <= set(models)
    assert body["total"] == body["available"] + body["loading"] + body["failed"] + body["skipped"]
    crypto = models["ElKulako/cryptobert"]
    assert crypto["status"] == "available" and crypto["budget"]["loaded_by"] == "budget"
    assert crypto["budget"]["source"] == "measured" and crypto["budget"]["core_ms_per_item"] > 0
    absent = models["yiyanghkust/finbert-tone"]  # not on this hub: its cost cannot be known
    assert absent["status"] == "skipped" and "config.json" in absent["reason"]


def test_model_admin_needs_the_admin_token(operated):
    url = f"{operated.http}/api/models/StephanAkkerman/FinTwitBERT-sentiment/load"
    assert httpx.post(url, timeout=10).status_code == 401
    assert httpx.post(url, timeout=10, headers={"Authorization": "Bearer wrong"}).status_code == 401
    skipped = _by_id(_models(operated))["StephanAkkerman/FinTwitBERT-sentiment"]
    assert skipped["status"] == "skipped" and "not in MODELS" in skipped["reason"]


def test_model_admin_unknown_model_is_404(operated):
    reply = httpx.post(f"{operated.http}/api/models/nobody/nothing/load", headers=ADMIN, timeout=10)
    assert reply.status_code == 404 and "unknown model 'nobody/nothing'" in reply.json()["detail"]["message"]


def test_model_admin_loads_then_unloads_a_catalog_model(operated):
    model_id = "StephanAkkerman/FinTwitBERT-sentiment"
    loading = httpx.post(f"{operated.http}/api/models/{model_id}/load", headers=ADMIN, timeout=10)
    body = _wait(operated, lambda body: _by_id(body)[model_id]["status"] != "loading")
    unloaded = httpx.post(f"{operated.http}/api/models/{model_id}/unload", headers=ADMIN, timeout=10)
    assert loading.status_code == 202 and loading.json()["model"]["status"] == "loading"
    assert _by_id(body)[model_id]["status"] == "available"
    assert unloaded.status_code == 200 and unloaded.json()["model"]["status"] == "skipped"
    assert "unloaded by an admin" in unloaded.json()["model"]["reason"]


def test_model_admin_load_reports_bytes_downloaded_of_the_total(hub, operated):
    repo = hub.repos["ProsusAI/finbert"]
    total = sum(repo.size(name) for name in repo.files)
    httpx.post(f"{operated.http}/api/models/ProsusAI/finbert/load", headers=ADMIN, timeout=10)
    body = _wait(
        operated, lambda body: (_by_id(body)["ProsusAI/finbert"].get("download") or {}).get("bytes_done", 0) > 0
    )
    model = _by_id(body)["ProsusAI/finbert"]
    assert model["status"] == "loading" and model["download"]["bytes_total"] == total
    assert 0 < model["download"]["bytes_done"] < total
    assert "downloaded" in model["reason"] and "MB from the hub" in model["reason"]
