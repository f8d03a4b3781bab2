"""Measure models on the shipped sample and derive the ensemble from the measurements (pure numpy).

Per model and domain: accuracy with a Wilson 95 % interval, macro-F1 with a seeded bootstrap
95 % interval, and the expected calibration error (ECE, 10 equal-width confidence bins).

Ensemble per domain: the sample's rows of that domain are split in two halves, stratified by
label (alternate rows of each label). On the fit half, each model gets a temperature (probabilities
raised to 1/T and renormalised, T from a grid minimising the log loss), then non-negative weights
that minimise the log loss of the weighted mixture (exponentiated gradient on the simplex). On the
check half the ensemble's macro-F1 is compared with the best single model's (chosen on the fit
half); if the ensemble does not beat it, that model alone serves the domain, and the decision says so.

A model is never graded on rows it was trained on (`trainingrows.py`): `choose_fair_ensemble`
compares the models only on the rows none of them saw (`fair_rows`), leaving out of the fit, with
weight 0 and a reason, a model whose training rows would shrink that common set below a quarter of
the domain's rows (a model fine-tuned on the whole sample cannot be measured on it at all).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .catalog import CANONICAL_LABELS

__all__ = [
    "EnsembleChoice",
    "calibrated_ece_draws",
    "choose_ensemble",
    "choose_fair_ensemble",
    "expected_calibration_error",
    "fair_rows",
    "fit_temperature",
    "fit_weights",
    "macro_f1",
    "measure",
    "split_halves",
    "win_probability",
    "wilson_interval",
]

_EPS = 1e-6
_TEMPERATURES = np.exp(np.linspace(math.log(0.25), math.log(8.0), 41))


def _matrix(probs: Sequence[Mapping[str, float]]) -> np.ndarray:
    out = np.array([[float(row.get(label, 0.0)) for label in CANONICAL_LABELS] for row in probs], dtype=float)
    out = np.clip(out, 0.0, None)
    sums = out.sum(axis=1, keepdims=True)
    normalised: np.ndarray = np.divide(out, sums, out=np.full_like(out, 1 / 3), where=sums > 0)
    return normalised


def _gold(labels: Sequence[str]) -> np.ndarray:
    return np.array([CANONICAL_LABELS.index(label) for label in labels], dtype=int)


def wilson_interval(correct: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Return the Wilson score interval of a proportion (95 % by default)."""
    if n == 0:
        return (0.0, 1.0)
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def macro_f1(gold: np.ndarray, predicted: np.ndarray) -> float:
    """Return the F1 averaged over the classes present in the gold labels."""
    scores = []
    for label in np.unique(gold):
        tp = int(np.sum((predicted == label) & (gold == label)))
        fp = int(np.sum((predicted == label) & (gold != label)))
        fn = int(np.sum((predicted != label) & (gold == label)))
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores)) if scores else 0.0


def expected_calibration_error(probs: np.ndarray, gold: np.ndarray, bins: int = 10) -> float:
    """Return the ECE: mean |accuracy - confidence| over equal-width confidence bins, weighted by size."""
    return float(_binned_gaps(probs.max(axis=1), (probs.argmax(axis=1) == gold)[np.newaxis], bins)[0])


def calibrated_ece_draws(probs: np.ndarray, *, draws: int = 1000, seed: int = 0, bins: int = 10) -> np.ndarray:
    """The ECEs a perfectly calibrated model with these confidences shows on as many texts, one per draw.

    Each draw makes every answer right with the probability its confidence states, so the ECE it
    measures is sampling noise alone: on a few hundred texts that noise is of the size of the usual
    goals (0.05 on 168 posts, docs/inference.md), and an observed ECE means little without it.
    """
    confidence = probs.max(axis=1)
    right = np.random.default_rng(seed).random((draws, len(confidence))) < confidence  # one draw per row
    return _binned_gaps(confidence, right, bins)


def _binned_gaps(confidence: np.ndarray, right: np.ndarray, bins: int) -> np.ndarray:
    """The ECE of each row of `right` (answers right or not; one row per draw) at these confidences."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    total = np.zeros(len(right))
    for low, high in zip(edges[:-1], edges[1:], strict=True):  # the bins hold the same texts in every row
        inside = (confidence > low) & (confidence <= high)
        if inside.any():
            total += inside.mean() * np.abs(right[:, inside].mean(axis=1) - confidence[inside].mean())
    return total


def measure(
    probs: Sequence[Mapping[str, float]], labels: Sequence[str], *, seed: int = 0, resamples: int = 200
) -> dict[str, Any]:
    """Return n, accuracy (+ Wilson CI), macro-F1 (+ bootstrap CI) and ECE of one model on labelled texts.

    Beside the ECE: what a perfectly calibrated model with these confidences would show on as many
    texts (`ece_if_calibrated`, mean of 1,000 draws) and the share of draws at or above it (`ece_p`).
    About 30 ms for 400 texts: callers on the event loop run it in a thread.
    """
    matrix, gold = _matrix(probs), _gold(labels)
    predicted = matrix.argmax(axis=1)
    n = len(gold)
    correct = int(np.sum(predicted == gold))
    rng = np.random.default_rng(seed)
    boot = (
        [macro_f1(gold[idx], predicted[idx]) for idx in (rng.integers(0, n, n) for _ in range(resamples))] if n else []
    )
    low, high = wilson_interval(correct, n)
    ece = expected_calibration_error(matrix, gold) if n else 0.0
    draws = calibrated_ece_draws(matrix, seed=seed) if n else np.zeros(0)
    return {
        "n": n,
        "accuracy": round(correct / n, 4) if n else None,
        "accuracy_ci95": [round(low, 4), round(high, 4)],
        "macro_f1": round(macro_f1(gold, predicted), 4) if n else None,
        "macro_f1_ci95": [round(float(np.percentile(boot, 2.5)), 4), round(float(np.percentile(boot, 97.5)), 4)]
        if boot
        else None,
        "ece": round(ece, 4) if n else None,
        "ece_if_calibrated": round(float(draws.mean()), 4) if n else None,
        "ece_p": round(float(np.mean(draws >= ece)), 3) if n else None,
    }


def _scale(matrix: np.ndarray, temperature: float) -> np.ndarray:
    powered = np.power(np.clip(matrix, _EPS, 1.0), 1.0 / temperature) * (matrix > 0)
    sums = powered.sum(axis=1, keepdims=True)
    scaled: np.ndarray = np.divide(powered, sums, out=np.full_like(powered, 1 / 3), where=sums > 0)
    return scaled


def _log_loss(matrix: np.ndarray, gold: np.ndarray) -> float:
    return float(-np.mean(np.log(np.clip(matrix[np.arange(len(gold)), gold], _EPS, 1.0))))


def fit_temperature(probs: np.ndarray, gold: np.ndarray) -> float:
    """Return the temperature from a log-spaced grid (0.25-8) that minimises the log loss."""
    losses = [_log_loss(_scale(probs, float(t)), gold) for t in _TEMPERATURES]
    return float(_TEMPERATURES[int(np.argmin(losses))])


def apply_temperature(row: Mapping[str, float], temperature: float) -> dict[str, float]:
    """Rescale one answer's probabilities by a fitted temperature."""
    scaled = _scale(_matrix([row]), temperature)[0]
    return {label: float(value) for label, value in zip(CANONICAL_LABELS, scaled, strict=True)}


def fit_weights(
    calibrated: Sequence[np.ndarray], gold: np.ndarray, *, steps: int = 300, rate: float = 0.5
) -> np.ndarray:
    """Return simplex weights minimising the mixture's log loss (exponentiated gradient)."""
    k = len(calibrated)
    weights = np.full(k, 1.0 / k)
    picked = np.stack([matrix[np.arange(len(gold)), gold] for matrix in calibrated], axis=1)  # n x k
    for _ in range(steps):
        mixture = np.clip(picked @ weights, _EPS, None)
        gradient = -(picked / mixture[:, None]).mean(axis=0)
        weights = weights * np.exp(-rate * gradient)
        weights /= weights.sum()
    return weights


def split_halves(labels: Sequence[str]) -> tuple[list[int], list[int]]:
    """Split row indices into (fit, check): alternate rows of each label, so both halves are stratified."""
    fit: list[int] = []
    check: list[int] = []
    counters: dict[str, int] = {}
    for index, label in enumerate(labels):
        seen = counters.get(label, 0)
        (fit if seen % 2 == 0 else check).append(index)
        counters[label] = seen + 1
    return fit, check


@dataclass(frozen=True)
class EnsembleChoice:
    """What serves one domain, and the measurements behind the choice."""

    mode: str  # "ensemble" or "single"
    weights: dict[str, float]
    temperatures: dict[str, float]
    ensemble_check_f1: float | None
    best_model: str | None
    best_check_f1: float | None
    reason: str
    n_fit: int = 0
    n_check: int = 0
    win_probability: float | None = None  # paired bootstrap: P(ensemble beats the best model) on the checked half
    # Set by choose_fair_ensemble: the rows fair to every compared model, and who was left out and why.
    rows_compared: int | None = None
    rows_in_domain: int | None = None
    left_out: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "weights": {k: round(v, 4) for k, v in self.weights.items()},
            "temperatures": {k: round(v, 3) for k, v in self.temperatures.items()},
            "ensemble_check_macro_f1": self.ensemble_check_f1,
            "best_model": self.best_model,
            "best_check_macro_f1": self.best_check_f1,
            "n_fit": self.n_fit,
            "n_check": self.n_check,
            "ensemble_win_probability": self.win_probability,
            "reason": self.reason,
            "rows_compared": self.rows_compared,
            "rows_in_domain": self.rows_in_domain,
            "left_out": self.left_out,
        }


# The ensemble must beat the best model on the checked half by more than chance: a few hundred texts
# leave macro-F1 differences of a point or two within noise, and on a domain whose gold has no
# neutral class (FiQA posts) even a random two-class model "helps" by pulling answers off neutral.
WIN_PROBABILITY_FLOOR = 0.95
BOOTSTRAP_ROUNDS = 1000


def win_probability(gold: np.ndarray, first: np.ndarray, second: np.ndarray, rounds: int = BOOTSTRAP_ROUNDS) -> float:
    """Return the share of paired bootstrap resamples (fixed seed) on which `first` has the higher macro-F1."""
    if len(gold) == 0:
        return 0.0
    rng = np.random.default_rng(0)
    wins = 0
    for _ in range(rounds):
        rows = rng.integers(0, len(gold), len(gold))
        wins += macro_f1(gold[rows], first[rows]) > macro_f1(gold[rows], second[rows])
    return round(wins / rounds, 3)


def choose_ensemble(
    answers: Mapping[str, Sequence[Mapping[str, float]]], labels: Sequence[str]
) -> EnsembleChoice | None:
    """Fit temperatures and weights on one half, check on the other; None without models or rows."""
    if not answers or len(labels) < 4:
        return None
    gold = _gold(labels)
    fit, check = split_halves(labels)
    ids = list(answers)
    raw = [_matrix(answers[model_id]) for model_id in ids]
    temperatures = [fit_temperature(matrix[fit], gold[fit]) for matrix in raw]
    calibrated = [_scale(matrix, t) for matrix, t in zip(raw, temperatures, strict=True)]
    fit_f1 = [macro_f1(gold[fit], matrix[fit].argmax(axis=1)) for matrix in calibrated]
    best = int(np.argmax(fit_f1))
    best_check = round(macro_f1(gold[check], calibrated[best][check].argmax(axis=1)), 4)
    weights = fit_weights([matrix[fit] for matrix in calibrated], gold[fit])
    mixture = sum(w * matrix for w, matrix in zip(weights, calibrated, strict=True))
    ensemble_predicted = np.asarray(mixture)[check].argmax(axis=1)
    ensemble_check = round(macro_f1(gold[check], ensemble_predicted), 4)
    wins = None  # with one model there is nothing to compare: no bootstrap
    if len(ids) > 1:
        wins = win_probability(gold[check], ensemble_predicted, calibrated[best][check].argmax(axis=1))
    temps = dict(zip(ids, temperatures, strict=True))
    common: dict[str, Any] = {
        "temperatures": temps,
        "best_model": ids[best],
        "best_check_f1": best_check,
        "ensemble_check_f1": ensemble_check,
        "n_fit": len(fit),
        "n_check": len(check),
        "win_probability": wins,
    }
    if wins is not None and ensemble_check > best_check and wins >= WIN_PROBABILITY_FLOOR:
        return EnsembleChoice(
            mode="ensemble",
            weights={m: float(w) for m, w in zip(ids, weights, strict=True)},
            reason=f"ensemble macro-F1 {ensemble_check} beats the best single model's {best_check} on the checked half "
            f"(in {wins:.0%} of bootstrap resamples)",
            **common,
        )
    return EnsembleChoice(
        mode="single",
        weights={m: 1.0 if m == ids[best] else 0.0 for m in ids},
        reason=(
            f"the ensemble (macro-F1 {ensemble_check}) does not beat {ids[best]} ({best_check}) on the "
            f"checked half in at least {WIN_PROBABILITY_FLOOR:.0%} of bootstrap resamples ({wins:.0%}): "
            "that model alone serves this domain"
        )
        if len(ids) > 1
        else f"{ids[best]} is the only measured model",
        **common,
    )


def fair_rows(
    total: int, excluded: Mapping[str, frozenset[int]], *, minimum_share: float = 0.25
) -> tuple[list[str], list[int], dict[str, str]]:
    """Pick the models to compare and the rows (0..total-1) that none of them was trained on.

    While the common rows number fewer than `minimum_share` of `total` (and at least 4), the model
    trained on the most rows is left out of the comparison, so one model cannot shrink everyone's.

    Returns:
        (the models compared, the rows fair to all of them, {left-out model: reason}).
    """
    members = list(excluded)
    left_out: dict[str, str] = {}
    floor = max(4, math.ceil(minimum_share * total))
    while True:
        rows = [row for row in range(total) if not any(row in excluded[model_id] for model_id in members)]
        if len(rows) >= floor or not members:
            return members, rows, left_out
        worst = max(members, key=lambda model_id: len(excluded[model_id]))
        if not excluded[worst]:
            return members, rows, left_out  # too few rows, and nobody's training data is the cause
        members.remove(worst)
        left_out[worst] = f"trained on {len(excluded[worst])} of the {total} rows: not compared on them"


def choose_fair_ensemble(
    answers: Mapping[str, Sequence[Mapping[str, float]]],
    labels: Sequence[str],
    excluded: Mapping[str, frozenset[int]],
    unmeasured: Mapping[str, str] | None = None,
) -> EnsembleChoice | None:
    """`choose_ensemble` on the rows fair to every compared model; left-out models get weight 0, with the reason.

    `unmeasured` names models that could not be scored on any row (trained on all of them), with why.
    """
    by_model = {model_id: excluded.get(model_id, frozenset()) for model_id in answers}
    members, rows, left_out = fair_rows(len(labels), by_model)
    choice = choose_ensemble(
        {model_id: [answers[model_id][row] for row in rows] for model_id in members}, [labels[row] for row in rows]
    )
    if choice is None:
        return None
    left_out = {**(unmeasured or {}), **left_out}
    return replace(choice, weights={**choice.weights, **dict.fromkeys(left_out, 0.0)},
                   rows_compared=len(rows), rows_in_domain=len(labels), left_out=left_out)
