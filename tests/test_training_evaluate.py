"""Every evaluation command refuses the texts the embedded head was trained on unless told otherwise."""

from __future__ import annotations

import csv

import pytest

from tests.test_training_splits import _write_data, _write_head
from training import evaluate
from training.datasets import LabelledTexts
from training.splits import SplitMismatch, build_split, train_key_hashes

FINTWITBERT = "StephanAkkerman/FinTwitBERT-sentiment"


def _csv(path, texts):
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows((text, "0") for text in texts)
    return path


def test_head_evaluation_refuses_a_part_its_weights_were_trained_on(tmp_path):
    data = _write_data(tmp_path / "data")
    split = build_split(data)
    head = _write_head(
        tmp_path / "head.safetensors",
        split=split.definition.to_json(),
        eval_precision="fp32",
        train_keys=train_key_hashes(split.train + split.validation),  # refit on train + validation
    )
    with pytest.raises(SplitMismatch, match=r"validation texts are among the texts these weights were trained on"):
        evaluate.evaluate_head(head, data, part="validation")


def test_data_rows_the_head_was_trained_on_are_left_out_for_every_model(tmp_path):
    split = build_split(_write_data(tmp_path))
    head = _write_head(tmp_path / "head.safetensors", train_keys=train_key_hashes(split.train))
    trained = split.train[0].text
    data = LabelledTexts([trained, "a text nobody trained on"], ["bearish", "bullish"])
    kept, models, left_out, note = evaluate.leave_out_training_rows(
        data, ["embedded/minilm-finhead", "ProsusAI/finbert"], head, None
    )
    assert kept.texts == ["a text nobody trained on"] and kept.labels == ["bullish"]
    assert models == ["embedded/minilm-finhead", "ProsusAI/finbert"] and left_out == {}
    assert note is not None and "left out 1 of 2 rows for every model" in note


def test_models_fine_tuned_on_the_named_dataset_are_not_scored(tmp_path):
    head = _write_head(tmp_path / "head.safetensors", train_keys="")
    data = LabelledTexts(["x"], ["bullish"])
    _, models, left_out, _ = evaluate.leave_out_training_rows(data, [FINTWITBERT, "ProsusAI/finbert"], head, "fiqa")
    assert models == ["ProsusAI/finbert"]
    assert left_out[FINTWITBERT]["status"] == "excluded" and "fine-tuned on FiQA" in left_out[FINTWITBERT]["error"]


def test_evaluate_cli_scores_no_training_row_unless_allowed(tmp_path, capsys):
    split = build_split(_write_data(tmp_path))
    head = _write_head(tmp_path / "head.safetensors", train_keys=train_key_hashes(split.train))
    file = _csv(tmp_path / "rows.csv", [row.text for row in split.train[:5]])
    assert evaluate.main(["--data", str(file), "--head", str(head), "--models", "embedded/minilm-finhead"]) == 2
    assert "left out 5 of 5 rows" in capsys.readouterr().err
