"""The embedded model's n-gram voice: features, fitting, storage in the weights file, the blend."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from inference.errors import ModelFilesInvalid
from inference.head import NgramVoice, ngram_voice, read_head_file
from inference.ngrams import MAX_CHARS, NgramFeaturizer, NgramModel
from training.ngrams import fit_ngram_model

TEXTS = [
    "Shares surge after record profit",
    "Profit beats estimates, shares surge",
    "Stock plunges as losses widen",
    "Losses widen and the stock plunges",
    "Company to hold annual meeting on Tuesday",
    "Annual meeting scheduled for Tuesday",
]
TARGETS = [2, 2, 0, 0, 1, 1]  # bearish, neutral, bullish = 0, 1, 2


def test_featurizer_counts_word_pairs_and_padded_characters():
    counts = NgramFeaturizer().counts("BTC up, BTC up")
    assert counts["w btc up"] == 2 and counts["w up btc"] == 1
    assert counts["c  b"] == 2 and counts["c up,"] == 1 and counts["c up "] == 1  # words padded by a space
    assert "w ," not in counts  # one-character tokens are not words


def test_featurizer_reads_a_bounded_prefix_of_a_huge_text():
    huge = "market rally " * 100_000
    assert NgramFeaturizer().counts(huge) == NgramFeaturizer().counts(huge[:MAX_CHARS])


def test_fitted_model_separates_the_training_classes():
    model = fit_ngram_model(TEXTS, TARGETS, min_df=1, c=10.0)
    predicted = model.log_probs(["shares surge", "stock plunges", "meeting on tuesday"]).argmax(axis=1)
    assert predicted.tolist() == [2, 0, 1]


def test_text_with_no_known_ngram_gets_the_intercepts_only():
    model = fit_ngram_model(TEXTS, TARGETS, min_df=1)
    log_probs = model.log_probs(["", "zzzz"])
    expected = model.intercept - np.log(np.exp(model.intercept).sum())
    np.testing.assert_allclose(log_probs, [expected, expected], rtol=1e-5)


def test_model_survives_the_round_trip_through_tensors():
    model = fit_ngram_model(TEXTS, TARGETS, min_df=1)
    tensors = model.to_tensors()
    assert all(isinstance(value, torch.Tensor) for value in tensors.values())  # no pickle in the file
    again = NgramModel.from_tensors(tensors)
    assert again is not None
    np.testing.assert_allclose(again.log_probs(TEXTS), model.log_probs(TEXTS), rtol=1e-6)


def test_inconsistent_tensors_are_refused():
    tensors = fit_ngram_model(TEXTS, TARGETS, min_df=1).to_tensors()
    tensors["ngram.idf"] = tensors["ngram.idf"][:-1]
    with pytest.raises(ModelFilesInvalid, match="shapes disagree"):
        NgramModel.from_tensors(tensors)
    assert NgramModel.from_tensors({}) is None  # a file without an n-gram voice


def test_voice_divides_the_blend_weight_by_the_head_temperature():
    model = fit_ngram_model(TEXTS, TARGETS, min_df=1)
    voice = NgramVoice(model, weight=0.5, temperature=2.0)
    np.testing.assert_allclose(voice(TEXTS[:2]), 0.25 * model.log_probs(TEXTS[:2]), rtol=1e-6)


def test_shipped_weights_blend_the_ngram_voice_chosen_on_validation():
    tensors, metadata = read_head_file()
    voice = ngram_voice(tensors, metadata)
    assert voice is not None and float(metadata["ngram_weight"]) > 0
    assert voice.scale == pytest.approx(float(metadata["ngram_weight"]) / float(metadata["temperature"]))
    assert len(voice.model.index) == tensors["ngram.coef"].shape[1]


def _probs(rows):
    return [dict(zip(("bearish", "neutral", "bullish"), row, strict=True)) for row in rows]


def test_blend_weight_is_zero_when_the_ngram_voice_only_adds_noise():
    from training.train_head import fit_blend_weight

    rng = np.random.default_rng(0)
    gold = rng.integers(0, 3, 300)
    sharp = np.full((300, 3), 0.1)
    sharp[np.arange(300), gold] = 0.8  # a model that is right and calibrated
    noise = np.log(rng.dirichlet(np.ones(3), 300))
    labels = [("bearish", "neutral", "bullish")[g] for g in gold]
    assert fit_blend_weight(_probs(sharp), noise, labels)["weight"] == 0.0


def test_blend_weight_grows_when_the_ngram_voice_knows_what_the_model_misses():
    from training.train_head import fit_blend_weight

    rng = np.random.default_rng(1)
    gold = rng.integers(0, 3, 300)
    unsure = np.full((300, 3), 1 / 3)  # a model that knows nothing
    informed = np.full((300, 3), np.log(0.2))
    informed[np.arange(300), gold] = np.log(0.6)
    labels = [("bearish", "neutral", "bullish")[g] for g in gold]
    assert fit_blend_weight(_probs(unsure), informed, labels)["weight"] >= 1.0
