"""`python -m training.lock` against the stand-in Hub: the lock written, a checked load, a tampered file refused."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from inference.catalog import get_spec
from inference.errors import ModelFilesInvalid
from inference.loader import LoadOptions, load_transformers_classifier, resolve_model_source
from inference.lock import hash_file, read_lock
from testbed.harness import ROOT
from testbed.hub_standin import StandinHub, StandinRepo, build_catalog_checkpoint, running_hub

pytestmark = pytest.mark.slow

MODEL = "ProsusAI/finbert"
LOADED = ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]
# What real repositories carry besides: nothing loading reads, so nothing the lock may name.
EXTRAS = {"README.md": b"# card\n", "tf_model.h5": b"h5" * 64, "pytorch_model.bin": b"pt" * 64,
          "onnx/model.onnx": b"onnx" * 64}


def _run(module: str, hub: StandinHub, cache: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_ENDPOINT": hub.endpoint, "HF_HUB_OFFLINE": "0", "HF_HUB_CACHE": str(cache),
           "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_ETAG_TIMEOUT": "2", "HF_HUB_DOWNLOAD_TIMEOUT": "2"}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=str(ROOT), env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stand-in FinBERT plus the files a real repository carries that loading never reads."""
    path = build_catalog_checkpoint(tmp_path_factory.mktemp("ckpt") / "finbert", MODEL, favour=0)
    for name, data in EXTRAS.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_bytes(data)
    return path


@pytest.fixture(scope="module")
def locked(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[StandinHub, Path, Path]]:
    """The hub serving the checkpoint, a lock written from it, and a cache filled by a locked fetch."""
    hub = StandinHub()
    hub.add_dir(MODEL, checkpoint)
    tmp = tmp_path_factory.mktemp("locked")
    lock, cache = tmp / "models.lock.json", tmp / "cache"
    with running_hub(hub) as served:
        written = _run("training.lock", served, tmp / "lock-cache", "--models", MODEL, "--out", str(lock))
        assert written.returncode == 0, written.stderr[-3000:]
        fetched = _run("inference.fetch", served, cache, "--models", MODEL, "--lock", str(lock))
        assert fetched.returncode == 0, fetched.stderr[-3000:]
        assert json.loads(fetched.stdout)[MODEL] | {"pinned": True} == json.loads(fetched.stdout)[MODEL]
        yield served, lock, cache


def test_lock_records_the_commit_and_digests_of_the_loaded_files_only(locked, checkpoint):
    hub, lock, _ = locked
    entry = read_lock(lock)[MODEL]
    assert entry.revision == hub.repos[MODEL].commit
    assert entry.files == {name: hash_file(checkpoint / name) for name in LOADED}


def test_locked_fetch_downloads_only_the_locked_files(locked):
    _, lock, cache = locked
    snapshot = resolve_model_source(MODEL, LoadOptions(cache_dir=cache, offline=True), read_lock(lock)[MODEL]).path
    assert sorted(path.relative_to(snapshot).as_posix() for path in snapshot.rglob("*") if path.is_file()) == LOADED


def test_load_that_checks_commit_and_digests_serves(locked):
    _, lock, cache = locked
    options = LoadOptions(cache_dir=cache, offline=True, precision="fp32")
    source = resolve_model_source(MODEL, options, read_lock(lock)[MODEL])
    assert source.origin == "cache" and source.path.name == read_lock(lock)[MODEL].revision
    model = load_transformers_classifier(get_spec(MODEL), source, options)
    assert len(model.predict_probs(["btc moves"])) == 1


def test_tampered_cached_file_fails_the_load_with_its_name(locked, tmp_path):
    _, lock, cache = locked
    copy = shutil.copytree(cache, tmp_path / "cache", symlinks=True)
    entry = read_lock(lock)[MODEL]
    blob = (copy / "models--ProsusAI--finbert" / "snapshots" / entry.revision / "model.safetensors").resolve()
    blob.chmod(0o644)
    data = blob.read_bytes()
    blob.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))  # one bit pattern changed, same size
    with pytest.raises(ModelFilesInvalid, match=r"digest mismatch: model\.safetensors has sha256 .*the lock expects"):
        resolve_model_source(MODEL, LoadOptions(cache_dir=copy, offline=True), entry)


def test_hub_serving_other_bytes_at_the_locked_commit_fails_the_fetch(locked, checkpoint, tmp_path):
    _, lock, _ = locked
    other = shutil.copytree(checkpoint, tmp_path / "other")
    (other / "tokenizer_config.json").write_text('{"model_max_length": 7}')
    hub = StandinHub()
    hub.repos[MODEL] = StandinRepo(MODEL, {p.relative_to(other).as_posix(): p for p in other.rglob("*") if p.is_file()},
                                   commit=read_lock(lock)[MODEL].revision)
    with running_hub(hub) as served:
        fetched = _run("inference.fetch", served, tmp_path / "cache", "--models", MODEL, "--lock", str(lock))
    assert fetched.returncode == 1
    assert "digest mismatch: tokenizer_config.json" in json.loads(fetched.stdout)[MODEL]["reason"]


def test_fetch_without_a_lock_entry_takes_the_loaded_files_unpinned(locked, tmp_path):
    hub, _, _ = locked
    (tmp_path / "empty.json").write_text(json.dumps({"version": 1, "models": {}}))
    empty = str(tmp_path / "empty.json")
    fetched = _run("inference.fetch", hub, tmp_path / "cache", "--models", MODEL, "--lock", empty)
    assert fetched.returncode == 0, fetched.stderr[-3000:]
    report = json.loads(fetched.stdout)[MODEL]
    assert report["pinned"] is False and report["revision"] == hub.repos[MODEL].commit
    snapshot = Path(report["path"])
    assert sorted(path.name for path in snapshot.iterdir()) == LOADED
