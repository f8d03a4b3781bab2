"""The embedded MiniLM + head model: verified weights, obvious sentences."""

from __future__ import annotations

import json

import pytest
import torch

from inference.errors import ModelFilesInvalid
from inference.head import (
    HEAD_WEIGHTS_PATH,
    build_finhead_model,
    find_minilm,
    load_embedded_classifier,
    read_head_file,
)
from inference.loader import LoadOptions
from training.train_head import fit_temperature


@pytest.fixture(scope="module")
def embedded():
    return load_embedded_classifier(LoadOptions(offline=True, precision="fp32"))


def test_head_weights_carry_validation_metrics_but_no_test_figures():
    _, metadata = read_head_file()
    assert "test" not in json.loads(metadata["metrics"])  # the test split is measured by training.evaluate
    assert json.loads(metadata["metrics"])["validation"]["domain:social"]["n"] > 100


def test_head_file_holds_all_six_encoder_layers_in_fp16():
    tensors, _ = read_head_file()
    layers = {key.split(".")[2] for key in tensors if key.startswith("encoder.layer.")}
    assert layers == {str(index) for index in range(6)}
    assert {tensors[key].dtype for key in tensors if key.startswith("encoder.")} == {torch.float16}
    assert not [key for key in tensors if "embeddings" in key]  # the verified base's embeddings are used
    assert HEAD_WEIGHTS_PATH.stat().st_size < 26_000_000  # 22 MB of encoder layers, the head, the n-gram voice


def test_head_file_carries_per_domain_temperatures_fitted_on_validation():
    _, metadata = read_head_file()
    calibration = json.loads(metadata["calibration"])
    assert {"news", "social", "all"} <= set(calibration)
    applied = metadata["temperature_domain"]
    assert float(metadata["temperature"]) == calibration[applied]["temperature"]


def test_build_finhead_model_divides_logits_by_the_stored_temperature(tmp_path):
    from safetensors.torch import save_file

    source = find_minilm(LoadOptions(offline=True))
    tensors, metadata = read_head_file()
    plain, hot = tmp_path / "plain.safetensors", tmp_path / "hot.safetensors"
    save_file(tensors, str(plain), metadata={**metadata, "temperature": "1.0"})
    save_file(tensors, str(hot), metadata={**metadata, "temperature": "2.5"})
    ids = torch.tensor([[101, 7045, 12058, 2044, 16565, 102]])
    with torch.no_grad():
        base = build_finhead_model(source.path, plain)(input_ids=ids).logits
        scaled = build_finhead_model(source.path, hot)(input_ids=ids).logits
    torch.testing.assert_close(scaled, base / 2.5)


def test_fit_temperature_cools_an_overconfident_model():
    # 70 % right but always 97 % sure: a temperature above 1 must lower the calibration error.
    probs = [{"bearish": 0.015, "neutral": 0.015, "bullish": 0.97}] * 100
    labels = ["bullish"] * 70 + ["bearish"] * 30
    fitted = fit_temperature(probs, labels)
    assert fitted["temperature"] > 1.5 and fitted["ece_after"] < fitted["ece_before"] / 2


def test_refit_weights_carry_the_train_and_validation_keys():
    _, metadata = read_head_file()
    assert metadata["trained_on"] == "train,validation"
    definition = json.loads(metadata["split"])
    trained = sum(counts["train"] + counts["validation"] for counts in definition["counts"].values())
    extra = len(metadata["train_keys"]) // 16 - trained  # the tweets of --extra-tweets, outside the split
    assert extra > 0 if "extra_tweets" in json.loads(metadata["train_config"]) else extra == 0


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
    from testbed.inference_fixtures import build_service

    service = build_service(["embedded/minilm-finhead"])
    [overall, news, social] = service.evaluation_results()
    assert overall["accuracy"] >= 0.80 and overall["n"] > 1000
    assert "validation" in overall["dataset"] and overall["precision"] == "fp32"
    assert news["n"] + social["n"] == overall["n"] and social["dataset"].endswith("FiQA microblog posts")


def test_embedded_answer_adds_the_scaled_ngram_voice_to_the_minilm_logits():
    from inference.catalog import CANONICAL_LABELS
    from inference.classifier import TransformersClassifier
    from inference.head import ngram_voice
    from inference.ngrams import NgramModel

    source = find_minilm(LoadOptions(offline=True))
    model = build_finhead_model(source.path)
    voice = ngram_voice(*read_head_file())
    assert voice is not None
    texts = ["Bitcoin jumps 8% as ETF inflows hit a record", "Shares of the bank fell after the fine"]
    loaded = load_embedded_classifier(LoadOptions(offline=True, precision="fp32"))
    assert loaded.text_logits is not None and loaded.text_logits.scale == voice.scale  # the served model blends it
    tokenizer = loaded.tokenizer
    alone = TransformersClassifier("embedded", model, tokenizer, CANONICAL_LABELS).predict_probs(texts)
    blended = TransformersClassifier("embedded", model, tokenizer, CANONICAL_LABELS, text_logits=voice)
    expected = torch.softmax(
        torch.log(torch.tensor([[row[label] for label in CANONICAL_LABELS] for row in alone]))
        + torch.as_tensor(voice(texts), dtype=torch.float32),
        dim=-1,
    )
    got = torch.tensor([[row[label] for label in CANONICAL_LABELS] for row in blended.predict_probs(texts)])
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
    assert isinstance(voice.model, NgramModel)
