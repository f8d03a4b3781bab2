"""The embedded MiniLM + head model: verified weights, obvious sentences."""

from __future__ import annotations

import json

import pytest

from inference.errors import ModelFilesInvalid
from inference.head import HEAD_WEIGHTS_PATH, find_minilm, load_embedded_classifier, read_head_file
from inference.loader import LoadOptions


@pytest.fixture(scope="module")
def embedded():
    return load_embedded_classifier(LoadOptions(offline=True, precision="fp32"))


def test_head_weights_are_small_and_carry_validation_metrics():
    _, metadata = read_head_file()
    assert HEAD_WEIGHTS_PATH.stat().st_size < 2_000_000
    assert "test" not in json.loads(metadata["metrics"])  # the test split is measured by inference.evaluate
    assert json.loads(metadata["metrics"])["validation"]["domain:social"]["n"] > 100


def test_head_classifies_obvious_sentences(embedded):
    texts = [
        "Shares surge after the company beats earnings estimates and raises guidance",
        "Stock plunges as the company cuts its outlook and announces layoffs",
        "The company will hold its annual shareholder meeting on Thursday",
    ]
    labels = [max(p, key=p.__getitem__) for p in embedded.predict_probs(texts)]
    assert labels == ["bullish", "bearish", "neutral"]


def test_find_minilm_wrong_digest_is_refused(tmp_path):
    with pytest.raises(ModelFilesInvalid, match="SHA-256 mismatch"):
        find_minilm(LoadOptions(offline=True, cache_dir=tmp_path), expected_sha256="0" * 64)


def test_service_reports_stored_head_evaluation():
    from inference import InferenceService

    service = InferenceService(["embedded/minilm-finhead"], device="cpu", data_dir=None)
    [overall, news, social] = service.evaluation_results()
    assert overall["accuracy"] >= 0.80 and overall["n"] > 1000
    assert "validation" in overall["dataset"] and overall["precision"] == "fp32"
    assert news["n"] + social["n"] == overall["n"] and social["dataset"].endswith("FiQA microblog posts")
