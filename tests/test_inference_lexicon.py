"""The always-available lexicon on crypto slang."""

from __future__ import annotations

import pytest

from inference.lexicon import CryptoLexicon


@pytest.fixture(scope="module")
def lexicon() -> CryptoLexicon:
    return CryptoLexicon()


@pytest.mark.parametrize(
    "text", ["BTC to the moon, hodl!", "ETH just hit a new ATH, super bullish", "SOL pumping hard, wagmi"]
)
def test_lexicon_crypto_slang_bullish(lexicon, text):
    assert lexicon.score_text(text).label == "bullish"


@pytest.mark.parametrize(
    "text",
    ["Got rekt on that rug pull", "Whales dumping, total FUD, bearish", "Exchange hacked, funds drained"],
)
def test_lexicon_crypto_slang_bearish(lexicon, text):
    assert lexicon.score_text(text).label == "bearish"


def test_lexicon_plain_statement_neutral(lexicon):
    result = lexicon.score_text("Bitcoin trades at 43,000 dollars on Tuesday")
    assert (result.label, result.score) == ("neutral", 0.0)


def test_lexicon_slang_unknown_to_plain_vader(lexicon):
    """Plain VADER gives 'rekt' and 'moon' nothing; the extended lexicon does."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    plain = SentimentIntensityAnalyzer().polarity_scores("rekt")["compound"]
    assert plain == 0.0 and lexicon.compound("rekt") < -0.3


def test_lexicon_probs_sum_to_one_and_score_matches(lexicon):
    result = lexicon.score_text("BTC to the moon")
    assert sum(result.probs.values()) == pytest.approx(1.0)
    assert result.score == pytest.approx(result.probs["bullish"] - result.probs["bearish"])
    assert result.model == "lexicon"
