"""Tiny BERT and RoBERTa models loaded by hub id from an offline cache: labels and batching."""

from __future__ import annotations

import pytest
from tests.inference_fixtures import BERT_POSNEG, BERT_RANDOM, CORPUS, KK08, ROBERTA_NEGPOS, offline_hub, tiny_hub  # noqa: F401

from inference.catalog import get_spec
from inference.loader import LoadOptions, load_transformers_classifier, resolve_model_source


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
