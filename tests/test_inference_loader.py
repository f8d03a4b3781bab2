"""Resolving model files (local dir, offline HF cache), memory checks and load statuses."""

from __future__ import annotations

import time

import pytest
import torch

from inference.catalog import get_spec
from inference.errors import ModelFilesInvalid, ModelNotCached, ModelOutOfMemory
from inference.loader import (
    NOT_CACHED_REASON,
    LoadOptions,
    ModelSlot,
    ModelStatus,
    check_memory,
    load_transformers_classifier,
    resolve_device,
    resolve_model_source,
)
from testbed import inference_fixtures
from testbed.inference_fixtures import BERT_POSNEG, FAKE_COMMIT

# Shared fixtures, bound here so pytest finds them (tests/conftest.py belongs to the app's tests).
tiny_hub = inference_fixtures.tiny_hub
offline_hub = inference_fixtures.offline_hub


def test_resolve_by_hub_id_from_offline_cache(offline_hub):
    source = resolve_model_source(BERT_POSNEG, LoadOptions(offline=True))
    assert source.origin == "cache"
    assert source.path.name == FAKE_COMMIT


def test_resolve_missing_model_offline_fails_fast(offline_hub):
    started = time.monotonic()
    with pytest.raises(ModelNotCached) as caught:
        resolve_model_source("ProsusAI/finbert", LoadOptions(offline=True))
    assert caught.value.reason == NOT_CACHED_REASON
    assert time.monotonic() - started < 2.0


def test_resolve_prefers_local_model_dir(offline_hub, tmp_path):
    local = tmp_path / "models" / "ProsusAI" / "finbert"
    local.mkdir(parents=True)
    (local / "config.json").write_text("{}")
    source = resolve_model_source(
        "ProsusAI/finbert", LoadOptions(offline=True, model_dir=tmp_path / "models")
    )
    assert (source.origin, source.path) == ("local", local)


def test_check_memory_refuses_weights_bigger_than_free_memory(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"\0" * 4096)
    with pytest.raises(ModelOutOfMemory, match="out of memory"):
        check_memory(tmp_path, "cpu", available_bytes=1024)
    check_memory(tmp_path, "cpu", available_bytes=1 << 20)


def test_load_corrupt_config_is_bad_files(tmp_path):
    (tmp_path / "config.json").write_text("{broken")
    source = resolve_model_source(str(tmp_path), LoadOptions(offline=True))
    with pytest.raises(ModelFilesInvalid, match="bad or incomplete model files"):
        load_transformers_classifier(get_spec(str(tmp_path)), source, LoadOptions(offline=True))


async def test_slot_missing_model_ends_failed_with_reason(offline_hub):
    def load():
        return resolve_model_source("ProsusAI/finbert", LoadOptions(offline=True))

    slot = ModelSlot(get_spec("ProsusAI/finbert"), load)
    slot.mark_loading("loading: queued")
    assert (slot.status, slot.reason) == (ModelStatus.LOADING, "loading: queued")
    await slot.load()
    assert (slot.status, slot.reason) == (ModelStatus.FAILED, NOT_CACHED_REASON)


async def test_slot_unexpected_error_is_translated_to_reason():
    def load():
        raise MemoryError()

    slot = ModelSlot(get_spec("ProsusAI/finbert"), load)
    await slot.load()
    assert slot.status is ModelStatus.FAILED and slot.reason.startswith("out of memory")


def test_resolve_device_cuda_without_gpu_raises():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert resolve_device("auto") == "cpu"
    with pytest.raises(ValueError, match="no CUDA device"):
        resolve_device("cuda")


def test_token_window_never_exceeds_the_checkpoints_positions():
    from transformers import BertConfig, RobertaConfig

    from inference.loader import token_window

    assert token_window(128, BertConfig(max_position_embeddings=512)) == 128
    assert token_window(128, BertConfig(max_position_embeddings=64)) == 64
    # RoBERTa numbers positions from pad_token_id + 1: 130 positions hold 128 tokens.
    assert token_window(128, RobertaConfig(max_position_embeddings=130, pad_token_id=1)) == 128
    assert token_window(128, RobertaConfig(max_position_embeddings=66, pad_token_id=1)) == 64
