"""Weighted combination of model probabilities."""

from __future__ import annotations

import pytest

from inference.ensemble import ModelAnswer, combine_answers, result_from_probs


def test_combine_answers_weighted_average():
    a = ModelAnswer("a", 3.0, [{"bearish": 0.0, "neutral": 0.0, "bullish": 1.0}])
    b = ModelAnswer("b", 1.0, [{"bearish": 1.0, "neutral": 0.0, "bullish": 0.0}])
    [result] = combine_answers([a, b], 1)
    assert result.probs == pytest.approx({"bearish": 0.25, "neutral": 0.0, "bullish": 0.75})
    assert (result.label, result.score, result.model) == ("bullish", pytest.approx(0.5), "ensemble(a+b)")


def test_combine_answers_zero_weights_average_equally():
    a = ModelAnswer("a", 0.0, [{"bearish": 0.2, "neutral": 0.0, "bullish": 0.8}])
    b = ModelAnswer("b", 0.0, [{"bearish": 0.6, "neutral": 0.0, "bullish": 0.4}])
    [result] = combine_answers([a, b], 1)
    assert result.probs["bullish"] == pytest.approx(0.6)


def test_combine_answers_wrong_length_raises():
    with pytest.raises(ValueError, match="expected 2"):
        combine_answers([ModelAnswer("a", 1.0, [{"neutral": 1.0}])], 2)


def test_result_from_probs_tie_goes_to_neutral():
    result = result_from_probs({"bearish": 0.4, "neutral": 0.4, "bullish": 0.2}, "m")
    assert (result.label, result.confidence) == ("neutral", pytest.approx(0.4))
