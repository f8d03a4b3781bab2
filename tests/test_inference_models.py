"""Tiny BERT and RoBERTa models loaded by hub id from an offline cache: labels and batching."""

from __future__ import annotations

import pytest

from inference.catalog import get_spec
from inference.loader import LoadOptions, load_transformers_classifier, resolve_model_source
from testbed import inference_fixtures
from testbed.inference_fixtures import BERT_POSNEG, BERT_RANDOM, CORPUS, KK08, ROBERTA_NEGPOS

# Shared fixtures, bound here so pytest finds them (tests/conftest.py belongs to the app's tests).
tiny_hub = inference_fixtures.tiny_hub
offline_hub = inference_fixtures.offline_hub


def load(model_id: str):
    options = LoadOptions(offline=True)
    return load_transformers_classifier(get_spec(model_id), resolve_model_source(model_id, options), options)


def top_label(probs: dict[str, float]) -> str:
    return max(probs, key=probs.__getitem__)


def test_bert_positive_first_maps_class0_to_bullish(offline_hub):
    classifier = load(BERT_POSNEG)
    assert classifier.labels == ("bullish", "bearish", "neutral")
    assert {top_label(p) for p in classifier.predict_probs(CORPUS)} == {"bullish"}


def test_roberta_negative_first_maps_class0_to_bearish(offline_hub):
    classifier = load(ROBERTA_NEGPOS)
    assert classifier.labels == ("bearish", "neutral", "bullish")
    assert {top_label(p) for p in classifier.predict_probs(CORPUS)} == {"bearish"}


def test_kk08_binary_label1_is_bullish_with_zero_neutral(offline_hub):
    [probs] = load(KK08).predict_probs(["bitcoin price rallies"])
    assert top_label(probs) == "bullish" and probs["neutral"] == 0.0


def test_batched_outputs_equal_one_by_one(offline_hub):
    classifier = load(BERT_RANDOM)
    alone = [classifier.predict_probs([text])[0] for text in CORPUS]
    together = classifier.predict_probs(CORPUS)
    assert classifier.batch_sizes_seen[-1] == len(CORPUS)
    assert {top_label(p) for p in alone} != {"neutral"} or len({round(p["neutral"], 6) for p in alone}) > 1
    for one, batched in zip(alone, together, strict=True):
        assert batched == pytest.approx(one, abs=1e-5)


def test_micro_batches_split_a_call_without_changing_outputs(offline_hub):
    classifier = load(BERT_RANDOM)
    whole = classifier.predict_probs(CORPUS)
    classifier.micro_batch = 2
    split = classifier.predict_probs(CORPUS)
    for a, b in zip(whole, split, strict=True):
        assert b == pytest.approx(a, abs=1e-5)


def test_int8_and_bf16_keep_forced_labels(offline_hub):
    for precision in ("int8", "bf16"):
        options = LoadOptions(offline=True, precision=precision)
        classifier = load_transformers_classifier(
            get_spec(BERT_POSNEG), resolve_model_source(BERT_POSNEG, options), options
        )
        assert classifier.precision == precision
        assert {top_label(p) for p in classifier.predict_probs(CORPUS)} == {"bullish"}


def test_resolve_precision_rules():
    from inference.classifier import resolve_precision

    assert resolve_precision("auto", "cuda") == "auto"  # measured at load, never from CPU flags
    assert resolve_precision("auto", "cpu") == "auto"
    assert resolve_precision("onnx-int8", "cpu") == "onnx-int8"
    with pytest.raises(ValueError, match="CPU-only"):
        resolve_precision("int8", "cuda")
    with pytest.raises(ValueError, match="CPU-only"):
        resolve_precision("onnx-fp32", "cuda")
    with pytest.raises(ValueError, match="needs CUDA"):
        resolve_precision("fp16", "cpu")


def test_overlapped_tokenization_gives_the_same_outputs(offline_hub):
    """The GPU path (tokenize chunk k+1 while chunk k runs), exercised on CPU: same outputs, same order."""
    classifier = load(BERT_RANDOM)
    classifier.micro_batch = 2
    chunks = [CORPUS[i : i + 2] for i in range(0, len(CORPUS), 2)]
    expected = [row for chunk in chunks for row in classifier._forward(chunk)]
    got = classifier._forward_overlapped(chunks)
    assert [[round(v, 5) for v in row.values()] for row in got] == [
        [round(v, 5) for v in row.values()] for row in expected
    ]
