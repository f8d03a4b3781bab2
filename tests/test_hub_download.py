"""The real app downloads, locks, verifies and caches every catalog model from a stand-in Hub."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from inference.catalog import CATALOG
from testbed.harness import FAST_ENV, MS, ROOT, AppProcess, free_port
from testbed.hub_standin import (
    REAL_LABELS,
    StandinHub,
    build_catalog_checkpoint,
    lock_entry,
    running_hub,
)

pytestmark = pytest.mark.slow

HUB_MODELS = [spec.id for spec in CATALOG.values() if spec.kind == "transformers"]
# Each stand-in is forced to answer its bullish class, which sits at a different index per model:
# a mapping by position instead of by name answers bearish or neutral for most of them.
_BULLISH = {"positive", "bullish", "label_1"}


def _favoured(repo_id: str) -> tuple[int, str]:
    names = [name.lower() for name in REAL_LABELS[repo_id][1]]
    index = next(i for i, name in enumerate(names) if name in _BULLISH)
    return index, "bullish"


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Build one tiny stand-in per catalog model, forced to answer its bullish class."""
    root = tmp_path_factory.mktemp("standin-models")
    return {
        repo_id: build_catalog_checkpoint(root / repo_id.replace("/", "--"), repo_id, favour=_favoured(repo_id)[0])
        for repo_id in HUB_MODELS
    }


def _hub_env(hub: StandinHub, cache: Path, lock: Path, models: list[str], **extra: str) -> dict[str, str]:
    return {
        "ENABLE_INFERENCE": "1",
        "MODELS": ",".join(models),
        "HF_ENDPOINT": hub.endpoint,
        "HF_HUB_OFFLINE": "0",
        "HF_HUB_CACHE": str(cache),
        "HF_HUB_DOWNLOAD_TIMEOUT": "1",
        "HF_HUB_ETAG_TIMEOUT": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "MODEL_LOCK": str(lock),
        **extra,
    }


def _run_module(module: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=str(ROOT),
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def _settled(app: AppProcess, timeout: float = 120_000 * MS) -> dict[str, dict[str, Any]]:
    """Poll /api/models until no model is loading; return the models by id."""
    deadline = time.monotonic() + timeout
    while True:
        body = httpx.get(f"{app.http}/api/models", timeout=10).json()
        if body["loading"] == 0 or time.monotonic() > deadline:
            return {model["id"]: model for model in body["models"]}
        time.sleep(0.2)


@contextlib.contextmanager
def _app(data_dir: Path, **env: str) -> Iterator[AppProcess]:
    """The real app with inference on; a longer start timeout, since it imports torch and transformers."""
    app = AppProcess(port=free_port(), data_dir=data_dir, env={**FAST_ENV, **env})
    try:
        app.start(timeout=240_000 * MS)
        yield app
    finally:
        app.stop()


def _dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _download_requests(hub: StandinHub) -> list[tuple[str, str]]:
    # The client also fetches an "agent harness" registry once a day; that is no model download.
    return [entry for entry in hub.requests if "agent-harnesses" not in entry[1]]


@pytest.fixture(scope="module")
def locked_hub(
    checkpoints: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[StandinHub, Path]]:
    """A stand-in serving every catalog model, and a lock written from it by `training.lock`."""
    hub = StandinHub()
    for repo_id, path in checkpoints.items():
        hub.add_dir(repo_id, path)
    lock = tmp_path_factory.mktemp("lock") / "models.lock.json"
    with running_hub(hub) as served:
        result = _run_module(
            "training.lock",
            {
                "HF_ENDPOINT": hub.endpoint,
                "HF_HUB_OFFLINE": "0",
                "HF_HUB_CACHE": str(tmp_path_factory.mktemp("lock-cache")),
            },
            "--out",
            str(lock),
        )
        assert result.returncode == 0, result.stderr[-3000:]
        yield served, lock


def test_lock_cli_records_commit_and_digest_of_every_file(locked_hub):
    hub, lock = locked_hub
    written = json.loads(lock.read_text())["models"]
    assert sorted(written) == sorted(HUB_MODELS)
    for repo_id in HUB_MODELS:
        assert written[repo_id] == lock_entry(hub.repos[repo_id])


def test_app_downloads_maps_labels_and_restarts_offline_without_requests(locked_hub, tmp_path):
    hub, lock = locked_hub
    cache = tmp_path / "cache"
    hub.requests.clear()
    with _app(_dir(tmp_path / "online"), **_hub_env(hub, cache, lock, HUB_MODELS)) as app:
        models = _settled(app)
        assert {m: models[m]["status"] for m in HUB_MODELS} == dict.fromkeys(HUB_MODELS, "available")
        assert all(models[m]["lock"]["state"] == "locked" for m in HUB_MODELS)
        for repo_id in HUB_MODELS:
            answer = httpx.post(
                f"{app.http}/api/sentiment", json={"texts": ["btc moves"], "model": repo_id}, timeout=30
            ).json()["results"][0]
            assert (answer["model"], answer["label"]) == (repo_id, _favoured(repo_id)[1])
    revisions = {path.split("/resolve/")[1].split("/")[0] for _, path in _download_requests(hub) if "/resolve/" in path}
    assert revisions == {hub.repos[m].commit for m in HUB_MODELS}  # every download named the locked commit
    hub.requests.clear()
    with _app(_dir(tmp_path / "offline"), **_hub_env(hub, cache, lock, HUB_MODELS, HF_HUB_OFFLINE="1")) as app:
        models = _settled(app)
        assert {m: models[m]["status"] for m in HUB_MODELS} == dict.fromkeys(HUB_MODELS, "available")
    assert hub.requests == []


def test_start_after_fetch_makes_no_download_request(locked_hub, tmp_path):
    hub, lock = locked_hub
    cache = tmp_path / "cache"
    models = HUB_MODELS[:3]
    env = _hub_env(hub, cache, lock, models)
    fetched = _run_module("inference.fetch", env)
    assert fetched.returncode == 0, fetched.stderr[-3000:]
    assert all(entry["ok"] for entry in json.loads(fetched.stdout).values())
    hub.requests.clear()
    with _app(_dir(tmp_path / "app"), **env) as app:
        served = _settled(app)
        assert [served[m]["status"] for m in models] == ["available"] * 3
    assert _download_requests(hub) == []


@pytest.fixture(scope="module")
def faulty_app(checkpoints: dict[str, Path], locked_hub, tmp_path_factory) -> Iterator[dict[str, dict[str, Any]]]:
    """One app, seven models: one healthy, the others each failing in their own way."""
    _, lock_path = locked_hub
    hub = StandinHub(stall_s=20.0)
    for repo_id, path in checkpoints.items():
        if repo_id != "yiyanghkust/finbert-tone":  # absent from this hub: 404
            hub.add_dir(repo_id, path)
    hub.faults.update(
        {
            "kk08/CryptoBERT": "gated",
            "StephanAkkerman/FinTwitBERT-sentiment": "500",
            "mrm8488/distilroberta-finetuned-financial-news-sentiment-analysis": "429",
            "cardiffnlp/twitter-roberta-base-sentiment-latest": "stall",
        }
    )
    lock = json.loads(lock_path.read_text())
    files = lock["models"]["ElKulako/cryptobert"]["files"]
    files["model.safetensors"] = "0" * 64  # the hub now serves other bytes than the lock names
    tmp = tmp_path_factory.mktemp("faulty")
    (tmp / "lock.json").write_text(json.dumps(lock))
    with running_hub(hub) as served:
        env = _hub_env(served, tmp / "cache", tmp / "lock.json", HUB_MODELS)
        with _app(_dir(tmp / "app"), **env) as app:
            yield _settled(app, timeout=180_000 * MS)


def test_healthy_model_serves_beside_failing_ones(faulty_app):
    assert faulty_app["ProsusAI/finbert"]["status"] == "available"


@pytest.mark.parametrize(
    ("repo_id", "reason"),
    [
        ("ElKulako/cryptobert", "digest mismatch: model.safetensors"),
        ("yiyanghkust/finbert-tone", "HTTP 404"),
        ("kk08/CryptoBERT", "HTTP 401"),
        ("StephanAkkerman/FinTwitBERT-sentiment", "HTTP 500"),
        ("mrm8488/distilroberta-finetuned-financial-news-sentiment-analysis", "HTTP 429"),
        ("cardiffnlp/twitter-roberta-base-sentiment-latest", "timed out"),
    ],
)
def test_hub_failure_fails_only_its_model_with_reason(faulty_app, repo_id, reason):
    model = faulty_app[repo_id]
    assert model["status"] == "failed"
    assert reason in model["error"]


def test_model_missing_from_lock_loads_with_unlocked_warning(checkpoints, tmp_path):
    hub = StandinHub()
    hub.add_dir("ProsusAI/finbert", checkpoints["ProsusAI/finbert"])
    (tmp_path / "empty.lock.json").write_text(json.dumps({"version": 1, "models": {}}))
    with running_hub(hub) as served:
        env = _hub_env(served, tmp_path / "cache", tmp_path / "empty.lock.json", ["ProsusAI/finbert"])
        with _app(_dir(tmp_path / "app"), **env) as app:
            model = _settled(app)["ProsusAI/finbert"]
    assert model["status"] == "available"
    assert model["lock"]["state"] == "unlocked" and "main" in model["lock"]["warning"]
