"""The documented market mood formula."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from core.records import PriceQuote
from sources import compute_market_mood, momentum_from_quotes

NOW = datetime(2025, 12, 8, tzinfo=UTC)


def test_mood_all_inputs_agree_bullish_with_high_confidence() -> None:
    mood = compute_market_mood(
        fear_greed=75, momentum_pct=2.5, news_scores=[0.3] * 20, social_scores=[0.2] * 50
    )
    expected_score = 0.3 * 0.5 + 0.3 * math.tanh(0.5) + 0.25 * 0.3 + 0.15 * 0.2
    assert mood.overall == "bullish" and mood.score == pytest.approx(expected_score, abs=1e-4)
    assert mood.confidence == pytest.approx(0.84, abs=0.01) and mood.reason is None


def test_mood_bearish_when_signals_negative() -> None:
    mood = compute_market_mood(fear_greed=15, momentum_pct=-6.0, news_scores=[-0.5] * 10)
    assert mood.overall == "bearish" and mood.reason == "missing: social"


def test_mood_confidence_drops_with_missing_inputs() -> None:
    full = compute_market_mood(
        fear_greed=80, momentum_pct=5.0, news_scores=[0.6] * 10, social_scores=[0.6] * 10
    )
    fng_only = compute_market_mood(fear_greed=80)
    assert fng_only.overall == full.overall == "bullish"
    assert fng_only.confidence == pytest.approx(0.3) and fng_only.confidence < full.confidence


def test_mood_thin_news_sample_carries_less_weight() -> None:
    thin = compute_market_mood(news_scores=[0.8, 0.8])
    assert thin.weights == {"news": 0.05} and thin.confidence == pytest.approx(0.05)


def test_mood_disagreement_lowers_confidence() -> None:
    agree = compute_market_mood(fear_greed=80, momentum_pct=4.0)
    disagree = compute_market_mood(fear_greed=80, momentum_pct=-4.0)
    assert disagree.confidence < agree.confidence


def test_mood_neutral_near_zero() -> None:
    mood = compute_market_mood(fear_greed=52, momentum_pct=0.1)
    assert mood.overall == "neutral" and 0.0 < mood.confidence <= 0.6


def test_mood_no_inputs_is_null_with_reason() -> None:
    mood = compute_market_mood()
    assert (mood.overall, mood.confidence, mood.score) == (None, 0.0, None)
    assert mood.reason is not None and mood.reason.startswith("no inputs")


def test_mood_ignores_out_of_range_fear_greed_and_nan_scores() -> None:
    mood = compute_market_mood(fear_greed=250, news_scores=[float("nan")])
    assert mood.overall is None


def test_momentum_market_cap_weighted_without_stablecoins() -> None:
    quotes = [
        PriceQuote("BTC", 1.0, "x", NOW, change_24h=4.0, market_cap=3.0),
        PriceQuote("ETH", 1.0, "x", NOW, change_24h=-2.0, market_cap=1.0),
        PriceQuote("USDT", 1.0, "x", NOW, change_24h=0.0, market_cap=100.0),
    ]
    assert momentum_from_quotes(quotes) == pytest.approx(2.5)


def test_momentum_equal_weight_when_a_cap_is_missing_and_none_when_empty() -> None:
    quotes = [
        PriceQuote("BTC", 1.0, "x", NOW, change_24h=4.0, market_cap=3.0),
        PriceQuote("SOL", 1.0, "x", NOW, change_24h=2.0),
    ]
    assert momentum_from_quotes(quotes) == pytest.approx(3.0)
    assert momentum_from_quotes([]) is None
