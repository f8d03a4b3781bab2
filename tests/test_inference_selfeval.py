"""Self-evaluation on the shipped sample: metrics, intervals, and an ensemble fitted to measurements."""

from __future__ import annotations

import asyncio
import json
import random

import numpy as np
import pytest

from inference import EMBEDDED_MODEL_ID
from inference.catalog import FIQA_2018, TRAINING_DATA, TWITTER_FINANCIAL_NEWS, TrainingData
from inference.evalsample import SAMPLE_PATH, read_sample
from inference.selfeval import (
    calibrated_ece_draws,
    choose_ensemble,
    choose_fair_ensemble,
    expected_calibration_error,
    fair_rows,
    measure,
    wilson_interval,
)
from testbed import inference_fixtures
from testbed.inference_fixtures import BERT_RANDOM

tiny_hub = inference_fixtures.tiny_hub
offline_hub = inference_fixtures.offline_hub
LABELS = ("bearish", "neutral", "bullish")


def _onehot(label: str, confidence: float = 0.9) -> dict[str, float]:
    rest = (1 - confidence) / 2
    return {name: confidence if name == label else rest for name in LABELS}


def test_shipped_sample_has_both_domains_and_documented_rows():
    rows = read_sample()
    assert {row.domain for row in rows} == {"news", "social"}
    assert all(row.label in LABELS and row.text and row.source for row in rows)
    assert (SAMPLE_PATH.parent / "LICENSE.md").is_file()


def test_wilson_interval_matches_the_textbook_value():
    low, high = wilson_interval(80, 100)
    assert (round(low, 3), round(high, 3)) == (0.711, 0.867)


def test_measure_reports_accuracy_interval_f1_and_calibration():
    gold = ["bearish", "neutral", "bullish", "bullish"] * 25
    probs = [_onehot(label, 1.0) for label in gold]
    numbers = measure(probs, gold)
    assert numbers["accuracy"] == 1.0 and numbers["macro_f1"] == 1.0 and numbers["ece"] == 0.0
    assert numbers["accuracy_ci95"][0] > 0.95 and numbers["n"] == 100


def test_measure_gives_a_calibrated_models_ece_beside_the_measured_one():
    gold = ["bullish", "bearish"] * 50
    numbers = measure([_onehot("bullish", 0.9)] * 100, gold)  # says 0.9, right half the time
    assert numbers["ece"] == pytest.approx(0.4, abs=0.01)
    assert numbers["ece_if_calibrated"] < 0.1 and numbers["ece_p"] == 0.0


def test_overconfident_model_has_calibration_error():
    probs = np.array([[0.0, 0.0, 1.0]] * 10)
    gold = np.array([2] * 5 + [0] * 5)
    assert expected_calibration_error(probs, gold) == pytest.approx(0.5)


def test_a_calibrated_model_on_few_texts_still_shows_an_ece_and_the_draws_say_how_much():
    rng = np.random.default_rng(1)
    confidence = rng.uniform(0.5, 1.0, 168)
    probs = np.stack([confidence, (1 - confidence) / 2, (1 - confidence) / 2], axis=1)
    gold = np.where(rng.random(168) < confidence, 0, 1)  # right exactly as often as it says
    draws = calibrated_ece_draws(probs, draws=500)
    observed = expected_calibration_error(probs, gold)
    assert observed > 0.02 and 0.03 < draws.mean() < 0.08  # noise of the size of a 0.05 goal
    assert 0.05 < np.mean(draws >= observed) < 0.95
    overconfident = np.array([[1.0, 0.0, 0.0]] * 84 + [[0.9, 0.05, 0.05]] * 84)
    wrong_half = np.array([0, 1] * 84)
    assert np.mean(calibrated_ece_draws(overconfident, draws=500) >= expected_calibration_error(
        overconfident, wrong_half)) == 0.0


def test_ensemble_falls_back_to_a_better_single_model():
    rng = random.Random(0)
    gold = [rng.choice(LABELS) for _ in range(200)]
    good = [_onehot(label) for label in gold]
    noise = [_onehot(rng.choice(LABELS)) for _ in gold]
    choice = choose_ensemble({"good": good, "noise": noise}, gold)
    assert choice is not None
    assert choice.weights["good"] > choice.weights["noise"]
    assert choice.best_model == "good"


def test_ensemble_serves_only_when_it_beats_the_best_model_beyond_chance():
    rng = random.Random(1)
    gold = [rng.choice(LABELS) for _ in range(400)]
    # Each model knows one half of the texts and shrugs on the other: together they know both.
    first = [_onehot(label, 0.9) if i % 2 else _onehot(rng.choice(LABELS), 0.34) for i, label in enumerate(gold)]
    second = [_onehot(label, 0.9) if not i % 2 else _onehot(rng.choice(LABELS), 0.34) for i, label in enumerate(gold)]
    complementary = choose_ensemble({"first": first, "second": second}, gold)
    assert complementary is not None and complementary.mode == "ensemble"
    assert complementary.win_probability is not None and complementary.win_probability >= 0.95
    # A copy of the best model plus a little noise: any gain is chance, so the best model serves alone.
    nudged = [dict(p) for p in first]
    for i in rng.sample(range(400), 4):
        nudged[i] = _onehot(gold[i], 0.34)
    copy = choose_ensemble({"first": first, "nudged": nudged}, gold)
    assert copy is not None and copy.mode == "single"
    assert "bootstrap" in copy.reason and copy.as_dict()["ensemble_win_probability"] < 0.95


def test_fair_rows_compare_models_only_on_rows_none_was_trained_on():
    members, rows, left_out = fair_rows(10, {"a": frozenset({0, 1}), "b": frozenset({2}), "c": frozenset()})
    assert members == ["a", "b", "c"] and rows == list(range(3, 10)) and left_out == {}


def test_fair_rows_leave_out_a_model_trained_on_most_rows():
    members, rows, left_out = fair_rows(100, {"memoriser": frozenset(range(90)), "other": frozenset({5})})
    assert members == ["other"] and len(rows) == 99
    assert "trained on 90 of the 100 rows" in left_out["memoriser"]


def test_model_that_memorised_the_rows_gets_no_weight_from_them():
    rng = random.Random(2)
    gold = [rng.choice(LABELS) for _ in range(200)]
    memorised = [_onehot(label, 0.99) for label in gold]  # perfect, because it was trained on them
    honest = [_onehot(label) if rng.random() < 0.8 else _onehot(rng.choice(LABELS)) for label in gold]
    naive = choose_ensemble({"memoriser": memorised, "honest": honest}, gold)
    assert naive is not None and naive.best_model == "memoriser"
    fair = choose_fair_ensemble({"memoriser": memorised, "honest": honest}, gold, {"memoriser": frozenset(range(200))})
    assert fair is not None and fair.weights["memoriser"] == 0.0 and fair.best_model == "honest"
    assert fair.as_dict()["left_out"]["memoriser"].startswith("trained on 200 of the 200 rows")


async def _self_evaluated(tmp_path, ready):
    """Self-evaluate the embedded head and a random model on every 8th sample row (both domains, ~90)."""
    rows = read_sample()
    picked = [rows[i] for i in range(0, len(rows), 8)]
    sample = tmp_path / "sample.jsonl"
    sample.write_text("".join(json.dumps(row.__dict__) + "\n" for row in picked))
    service = await inference_fixtures.running_service(
        [EMBEDDED_MODEL_ID, BERT_RANDOM], None, 120, self_evaluate=True, sample_path=sample
    )
    for _ in range(600):
        if ready(service):
            break
        await asyncio.sleep(0.5)
    described = {model["id"]: model for model in service.describe_models()}
    choices = service.ensemble_choices()
    rows_shown = service.evaluation_results()
    await service.stop()
    return picked, described, choices, rows_shown


def _both_evaluated(service):
    evaluations = [model["evaluation"] or {} for model in service.describe_models()]
    return [evaluation.get("status") for evaluation in evaluations[:2]] == ["done", "done"]


def _refitted_with_both(service):
    choices = service.ensemble_choices()
    return len(choices) == 2 and all(BERT_RANDOM in choice["weights"] for choice in choices.values())


async def test_self_evaluation_leaves_out_the_rows_a_model_was_trained_on(offline_hub, tmp_path, monkeypatch):
    monkeypatch.setitem(TRAINING_DATA, BERT_RANDOM, TrainingData((FIQA_2018,), "trained on FiQA (test)"))
    picked, described, choices, _ = await _self_evaluated(tmp_path, _refitted_with_both)
    fiqa = sum(row.source == FIQA_2018 for row in picked)
    evaluation = described[BERT_RANDOM]["evaluation"]
    assert evaluation["excluded"]["rows"] == fiqa and "FiQA" in evaluation["excluded"]["reason"]
    assert evaluation["domains"]["news"]["n"] == sum(row.domain == "news" and row.source != FIQA_2018 for row in picked)
    assert "social" not in evaluation["domains"]  # every social row is a FiQA post
    assert described[EMBEDDED_MODEL_ID]["evaluation"]["excluded"]["rows"] == 0
    assert choices["social"]["weights"][BERT_RANDOM] == 0.0 and BERT_RANDOM in choices["social"]["left_out"]


async def test_model_trained_on_every_sample_row_is_not_measured_and_gets_no_weight(offline_hub, tmp_path, monkeypatch):
    both = (FIQA_2018, TWITTER_FINANCIAL_NEWS)  # as FinTwitBERT-sentiment's card says of itself
    monkeypatch.setitem(TRAINING_DATA, BERT_RANDOM, TrainingData(both, "trained on both (test)"))
    picked, described, choices, _ = await _self_evaluated(tmp_path, _refitted_with_both)
    evaluation = described[BERT_RANDOM]["evaluation"]
    assert evaluation["status"] == "excluded" and f"all {len(picked)} rows" in evaluation["error"]
    for domain in ("news", "social"):
        assert choices[domain]["weights"][BERT_RANDOM] == 0.0
        assert choices[domain]["left_out"][BERT_RANDOM].startswith("not measured")


async def test_service_weights_the_embedded_head_over_a_random_model(offline_hub, tmp_path):
    _, described, choices, rows_shown = await _self_evaluated(tmp_path, _both_evaluated)
    for domain in ("news", "social"):
        assert described[EMBEDDED_MODEL_ID]["weights"][domain] > described[BERT_RANDOM]["weights"][domain]
        assert described[EMBEDDED_MODEL_ID]["weight_source"][domain] == "measured"
        assert choices[domain]["n_check"] > 0 and choices[domain]["reason"]
    news = described[EMBEDDED_MODEL_ID]["evaluation"]["domains"]["news"]
    assert news["accuracy"] > described[BERT_RANDOM]["evaluation"]["domains"]["news"]["accuracy"]
    assert news["accuracy_ci95"][0] < news["accuracy"] < news["accuracy_ci95"][1]
    assert any(row["model"] == BERT_RANDOM and row["dataset"] == "shipped sample, social" for row in rows_shown)

