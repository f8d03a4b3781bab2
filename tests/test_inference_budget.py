"""The default model set follows a measurement of this machine against declared rules."""

from __future__ import annotations

from inference.budget import (
    NEWS_ITEM_TEXT,
    BudgetLedger,
    BudgetRules,
    EncoderShape,
    ItemCost,
    estimate_cost,
    measure_item_cost,
    model_threads,
)

MINILM = EncoderShape(layers=6, hidden=384, intermediate=1536, vocab=30522, positions=512)
BERT_BASE = EncoderShape(layers=12, hidden=768, intermediate=3072, vocab=30522, positions=512)


def rules(**overrides: float) -> BudgetRules:
    values = {"cpu_share": 0.5, "news_per_min": 6.0, "deadline_ms": 500.0, "model_cores": 1, "memory_mib": 8000.0}
    return BudgetRules(**(values | overrides))  # type: ignore[arg-type]


def test_model_threads_leave_the_event_loop_a_core():
    assert model_threads(2) == 1 and model_threads(1) == 1 and model_threads(8) == 7


def test_encoder_shape_reads_a_bert_config():
    config = {"num_hidden_layers": 12, "hidden_size": 768, "intermediate_size": 3072, "vocab_size": 30522}
    assert EncoderShape.from_config(config) == BERT_BASE
    assert EncoderShape.from_config({"hidden_size": 768}) is None


def test_estimate_scales_the_measured_cost_by_multiply_adds():
    measured = ItemCost(30.0, "measured", "test")
    estimate = estimate_cost(BERT_BASE, measured, MINILM, "the embedded model")
    ratio = BERT_BASE.multiply_adds() / MINILM.multiply_adds()
    assert estimate.source == "estimated" and estimate.core_ms == 30.0 * ratio
    assert 7 < ratio < 9  # twice the layers of four times the width, attention aside


def test_weight_size_of_a_bert_base_is_about_420_mib():
    assert 400 < BERT_BASE.weight_mib < 440


def test_ledger_refuses_a_model_past_the_news_deadline():
    ledger = BudgetLedger(rules(deadline_ms=500.0))
    ledger.charge(ItemCost(300.0, "measured", "a"), 400)
    refusal = ledger.refusal(ItemCost(300.0, "estimated", "b"), 400)
    assert refusal is not None and "0.30 s of a core" in refusal and "news deadline" in refusal


def test_ledger_refuses_a_model_past_the_cpu_share_at_the_news_rate():
    refusal = BudgetLedger(rules(news_per_min=600.0, cpu_share=0.25)).refusal(ItemCost(100.0, "measured", "a"), 1)
    assert refusal is not None and "over the 25% share" in refusal


def test_ledger_refuses_weights_past_half_the_memory():
    refusal = BudgetLedger(rules(memory_mib=300.0)).refusal(ItemCost(10.0, "measured", "a"), 420)
    assert refusal is not None and "MiB" in refusal


def test_ledger_takes_a_model_that_fits_and_more_cores_take_more():
    cost = ItemCost(300.0, "estimated", "a")
    two_cores, eight_cores = BudgetLedger(rules(model_cores=1)), BudgetLedger(rules(model_cores=7))
    for ledger in (two_cores, eight_cores):
        assert ledger.refusal(cost, 400) is None
        ledger.charge(cost, 400)
    assert two_cores.refusal(cost, 400) is not None and eight_cores.refusal(cost, 400) is None


def test_measure_item_cost_times_window_filling_items():
    seen: list[list[str]] = []
    cost = measure_item_cost(seen.append, threads=1, runs=3)
    assert cost.source == "measured" and cost.core_ms >= 0
    assert seen == [[NEWS_ITEM_TEXT]] * 4  # a warm-up, then the timed runs
