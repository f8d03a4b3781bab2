"""`market.overall` and `market.confidence`: one documented formula over four signals.

Each available input becomes a signal in [-1, 1] (negative: bearish):

    fear_greed   s = (value - 50) / 50                          weight 0.30
    momentum     s = tanh(change_24h_pct / 5)                   weight 0.30
                 (market-cap-weighted mean 24 h change of the tracked non-stable coins;
                  a 5 % day maps to 0.76)
    news         s = mean(sentiment_score) of recent items      weight 0.25 x min(1, n / 10)
    social       s = mean(score) of recent posts                weight 0.15 x min(1, n / 10)

    S            = sum(w_i s_i) / sum(w_i)                      over the inputs present
    overall      = bullish if S >= 0.15, bearish if S <= -0.15, else neutral
    coverage     = sum(w_i) / 1.0                               (missing or thin inputs lower it)
    agreement    = 1 - sum(w_i |s_i - S|) / (2 sum(w_i))        (1 when all signals agree)
    decisiveness = min(1, |S| / 0.5) for bullish/bearish, 1 - |S| / 0.15 for neutral
    confidence   = coverage x agreement x (0.5 + 0.5 x decisiveness), in [0, 1]

With no input at all, overall is None, confidence 0 and `reason` says why.
Pure: no I/O, no clock; the caller gathers the inputs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from core.records import PriceQuote

from .symbols import STABLECOINS

__all__ = ["BASE_WEIGHTS", "MarketMood", "compute_market_mood", "mood_label", "momentum_from_quotes"]

Overall = Literal["bullish", "bearish", "neutral"]

BASE_WEIGHTS: Mapping[str, float] = {"fear_greed": 0.30, "momentum": 0.30, "news": 0.25, "social": 0.15}
LABEL_THRESHOLD = 0.15
DECISIVE_SCORE = 0.5
MOMENTUM_SCALE_PCT = 5.0
FULL_SAMPLE = 10  # scored texts needed for news/social to carry their full weight


@dataclass(frozen=True)
class MarketMood:
    """The result: label, confidence, the combined score and what went into it."""

    overall: Overall | None
    confidence: float
    score: float | None = None
    signals: Mapping[str, float] = field(default_factory=dict)
    weights: Mapping[str, float] = field(default_factory=dict)
    reason: str | None = None


def momentum_from_quotes(quotes: Iterable[PriceQuote]) -> float | None:
    """Return the market-cap-weighted mean 24 h change (%) of non-stable coins, or None.

    Falls back to an equal-weighted mean when any coin lacks a market cap (mixing weighted and
    unweighted coins would over-count the ones we know).
    """
    rows = [q for q in quotes if q.change_24h is not None and q.symbol not in STABLECOINS]
    if not rows:
        return None
    caps = [q.market_cap for q in rows]
    if all(cap is not None and cap > 0 for cap in caps):
        total = sum(cap for cap in caps if cap is not None)
        return sum((q.change_24h or 0.0) * (q.market_cap or 0.0) for q in rows) / total
    return sum(q.change_24h or 0.0 for q in rows) / len(rows)


def mood_label(score: float) -> Overall:
    """Read a score in [-1, 1] as bullish, bearish or neutral (|score| under LABEL_THRESHOLD)."""
    if score >= LABEL_THRESHOLD:
        return "bullish"
    if score <= -LABEL_THRESHOLD:
        return "bearish"
    return "neutral"


def _mean(values: Sequence[float]) -> float | None:
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else None


def _clip(value: float) -> float:
    return max(-1.0, min(1.0, value))


def compute_market_mood(
    *,
    fear_greed: int | None = None,
    momentum_pct: float | None = None,
    news_scores: Sequence[float] = (),
    social_scores: Sequence[float] = (),
) -> MarketMood:
    """Combine the available signals into overall mood and confidence (see the module doc).

    Args:
        fear_greed: the index value 0..100, or None.
        momentum_pct: market 24 h change in percent (see `momentum_from_quotes`), or None.
        news_scores: recent news `sentiment_score`s in [-1, 1].
        social_scores: recent social post scores in [-1, 1].
    """
    signals: dict[str, float] = {}
    weights: dict[str, float] = {}
    if fear_greed is not None and 0 <= fear_greed <= 100:
        signals["fear_greed"] = (fear_greed - 50) / 50.0
        weights["fear_greed"] = BASE_WEIGHTS["fear_greed"]
    if momentum_pct is not None and math.isfinite(momentum_pct):
        signals["momentum"] = math.tanh(momentum_pct / MOMENTUM_SCALE_PCT)
        weights["momentum"] = BASE_WEIGHTS["momentum"]
    for name, scores in (("news", news_scores), ("social", social_scores)):
        mean = _mean(scores)
        if mean is not None:
            signals[name] = _clip(mean)
            weights[name] = BASE_WEIGHTS[name] * min(1.0, len(scores) / FULL_SAMPLE)
    missing = [name for name in BASE_WEIGHTS if name not in signals]
    total = sum(weights.values())
    if not signals or total <= 0:
        return MarketMood(
            None, 0.0, reason="no inputs: fear & greed, momentum, news and social all unavailable"
        )
    score = sum(weights[n] * signals[n] for n in signals) / total
    overall = mood_label(score)
    coverage = total / sum(BASE_WEIGHTS.values())
    agreement = 1.0 - sum(weights[n] * abs(signals[n] - score) for n in signals) / (2.0 * total)
    if overall == "neutral":
        decisiveness = 1.0 - abs(score) / LABEL_THRESHOLD
    else:
        decisiveness = min(1.0, abs(score) / DECISIVE_SCORE)
    confidence = max(0.0, min(1.0, coverage * agreement * (0.5 + 0.5 * decisiveness)))
    reason = f"missing: {', '.join(missing)}" if missing else None
    return MarketMood(
        overall=overall,
        confidence=round(confidence, 3),
        score=round(score, 4),
        signals={n: round(v, 4) for n, v in signals.items()},
        weights={n: round(v, 4) for n, v in weights.items()},
        reason=reason,
    )
