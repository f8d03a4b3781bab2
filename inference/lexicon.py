"""VADER extended with crypto and market slang: the model that is always available.

VADER alone is weak on financial text (about 0.50-0.57 accuracy on three-class news, see
docs/inference.md), so the service uses it only as the last resort. Its strength is that it never
needs weights, a GPU, or the network.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from core.records import SentimentResult

from .catalog import CANONICAL_LABELS, LEXICON_MODEL_ID
from .ensemble import result_from_probs

__all__ = ["CRYPTO_TERMS", "CryptoLexicon"]

# Valences on VADER's -4..+4 scale. VADER matches single lower-cased tokens, so multi-word
# phrases ("all time high") are covered by their abbreviations or by the words they contain.
CRYPTO_TERMS: Mapping[str, float] = {
    # crypto slang
    "bullish": 2.6,
    "bearish": -2.6,
    "bull": 1.5,
    "bear": -1.5,
    "moon": 2.2,
    "mooning": 2.6,
    "moonshot": 2.2,
    "rocket": 1.8,
    "lambo": 2.0,
    "hodl": 1.5,
    "hodling": 1.5,
    "btfd": 1.5,
    "wagmi": 2.0,
    "ngmi": -2.0,
    "gm": 0.5,
    "rekt": -3.0,
    "rug": -3.0,
    "rugged": -3.2,
    "rugpull": -3.4,
    "ponzi": -3.0,
    "pump": 1.6,
    "pumping": 1.9,
    "pumped": 1.6,
    "dump": -2.0,
    "dumping": -2.3,
    "dumped": -2.0,
    "fud": -2.0,
    "fomo": 0.6,
    "shill": -1.5,
    "shitcoin": -2.0,
    "bagholder": -2.0,
    "ath": 2.2,
    "breakout": 1.8,
    "liquidated": -2.6,
    "liquidation": -2.2,
    "liquidations": -2.2,
    "capitulation": -2.6,
    "hack": -2.5,
    "hacked": -3.0,
    "exploit": -2.5,
    "exploited": -2.8,
    "drained": -2.5,
    "insolvent": -3.0,
    "insolvency": -3.0,
    "delisted": -2.2,
    "delisting": -2.0,
    # market verbs that VADER does not know
    "surge": 2.0,
    "surges": 2.0,
    "surged": 2.0,
    "soar": 2.3,
    "soars": 2.3,
    "soared": 2.3,
    "rally": 2.0,
    "rallies": 2.0,
    "rallied": 2.0,
    "jump": 1.4,
    "jumps": 1.4,
    "jumped": 1.4,
    "rises": 1.0,
    "rose": 1.0,
    "climbs": 1.2,
    "gains": 1.6,
    "uptrend": 1.8,
    "rebound": 1.6,
    "plunge": -2.6,
    "plunges": -2.6,
    "plunged": -2.6,
    "tumble": -2.3,
    "tumbles": -2.3,
    "slump": -2.2,
    "slumps": -2.2,
    "slides": -1.4,
    "sinks": -1.8,
    "falls": -1.2,
    "fell": -1.2,
    "drops": -1.2,
    "downtrend": -1.8,
    "selloff": -2.2,
    "crash": -2.8,
    "crashes": -2.8,
    "outperform": 1.8,
    "outperforms": 1.8,
    "underperform": -1.8,
    "underperforms": -1.8,
    "upgrade": 1.6,
    "upgrades": 1.6,
    "upgraded": 1.6,
    "downgrade": -1.9,
    "downgrades": -1.9,
    "downgraded": -1.9,
    "beats": 1.3,
    "tops": 1.0,
    "record": 0.8,
    "bankruptcy": -3.0,
    "layoffs": -2.0,
    "lawsuit": -1.8,
    "sues": -1.8,
    "fraud": -3.0,
    "recession": -2.2,
}


class CryptoLexicon:
    """Score texts with VADER plus `CRYPTO_TERMS`; cheap, deterministic, no weights.

    The compound score c in [-1, 1] is turned into probabilities consistent with VADER's own rule
    (|c| < threshold means neutral): the pole gets |c| and neutral gets
    (1 - |c|) * t / (1 - t), which equals |c| exactly at |c| = t; both are then normalised.
    """

    model_id = LEXICON_MODEL_ID
    device = "cpu"

    def __init__(self, *, neutral_threshold: float = 0.05, extra_terms: Mapping[str, float] | None = None):
        if not 0.0 < neutral_threshold < 1.0:
            raise ValueError(f"neutral_threshold must be in (0, 1), got {neutral_threshold}")
        self.neutral_threshold = neutral_threshold
        self._analyzer = SentimentIntensityAnalyzer()
        self._analyzer.lexicon.update(CRYPTO_TERMS)
        if extra_terms:
            self._analyzer.lexicon.update(extra_terms)

    def compound(self, text: str) -> float:
        """Return VADER's compound score of one text, with the crypto terms applied."""
        return float(self._analyzer.polarity_scores(text)["compound"])

    def probs_from_compound(self, compound: float) -> dict[str, float]:
        """Turn a compound score into {bearish, neutral, bullish} probabilities."""
        strength = min(abs(compound), 1.0)
        t = self.neutral_threshold
        neutral = (1.0 - strength) * t / (1.0 - t)
        total = strength + neutral
        pole = strength / total if total > 0 else 0.0
        probs: dict[str, float] = dict.fromkeys(CANONICAL_LABELS, 0.0)
        probs["neutral"] = neutral / total if total > 0 else 1.0
        if compound > 0:
            probs["bullish"] = pole
        elif compound < 0:
            probs["bearish"] = pole
        return probs

    def predict_probs(self, texts: Sequence[str]) -> list[dict[str, float]]:
        """Return class probabilities for each text (the shape every model in the service returns)."""
        return [self.probs_from_compound(self.compound(text)) for text in texts]

    def score_text(self, text: str) -> SentimentResult:
        """Score one text and return a full `SentimentResult`."""
        return result_from_probs(self.predict_probs([text])[0], self.model_id)
