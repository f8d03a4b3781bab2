"""The embedded head's split: deduplicated before splitting, stored with the weights, checked by evaluate."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from inference.evalsample import SAMPLE_PATH, read_sample
from inference.head import HEAD_FORMAT, read_head_file, stored_evaluation
from inference.trainingrows import NORMALISATION_VERSION, key_hash, normalise_text, parse_key_hashes
from training import evaluate
from training.datasets import FIQA_FILE, TWITTER_EXTRA_FILE, TWITTER_FILE
from training.evalsample import build_sample
from training.splits import SplitMismatch, build_split, extra_training_rows, train_key_hashes, verify_split

_WORDS = ["profit", "loss", "guidance", "merger", "dividend", "lawsuit", "upgrade", "recall", "buyback", "strike"]


def _twitter_rows() -> list[tuple[str, str]]:
    rows = []
    for label in ("0", "1", "2"):
        for i in range(40):
            rows.append((f"$ACME {_WORDS[i % 10]} note {label}-{i} https://t.co/x{i}", label))
    # Near-copies of row 0 (case, URL, mention, cashtag $, spacing) with the same label...
    rows += [("$acme PROFIT note 0-0   https://t.co/other", "0"), ("@desk ACME profit note 0-0", "0")]
    # ...and a text that appears with two different labels.
    rows += [("Shares of Foo are flat", "1"), ("shares of foo are flat!", "2")]
    return rows


def _fiqa_rows() -> list[dict[str, str]]:
    rows = []
    for kind in ("post", "headline"):
        for sign, word in ((1, "up"), (-1, "down")):
            for i in range(20):
                rows.append({"sentence": f"{kind} {_WORDS[i % 10]} {word} {i}", "score": str(0.5 * sign), "type": kind})
    rows.append({"sentence": "post neutral zero", "score": "0", "type": "post"})
    rows.append({"sentence": "POST profit up 0", "score": "0.4", "type": "post"})  # duplicate of a post
    return rows


def _write_data(root, twitter=None, fiqa=None):
    (root / TWITTER_FILE).parent.mkdir(parents=True, exist_ok=True)
    (root / FIQA_FILE).parent.mkdir(parents=True, exist_ok=True)
    with (root / TWITTER_FILE).open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(twitter if twitter is not None else _twitter_rows())
    with (root / FIQA_FILE).open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, ["_id", "sentence", "target", "aspect", "score", "type"])
        writer.writeheader()
        for i, row in enumerate(fiqa if fiqa is not None else _fiqa_rows()):
            writer.writerow({"_id": str(i), "target": "X", "aspect": "Stock", **row})
    return root


def _write_head(path, **metadata):
    from safetensors.torch import save_file

    save_file({"head.1.weight": torch.zeros(2, 2)}, str(path), metadata={"format": HEAD_FORMAT, **metadata})
    return path


def test_normalise_text_folds_case_urls_mentions_and_cashtags():
    assert normalise_text("@desk $ACME  Profit… https://t.co/abc www.x.com/y") == normalise_text("acme profit")


def test_split_has_no_normalised_duplicate_across_parts(tmp_path):
    split = build_split(_write_data(tmp_path))
    keys = [[row.key for row in split.part(name)] for name in ("train", "validation", "test")]
    flat = [key for part in keys for key in part]
    assert len(flat) == len(set(flat))
    assert split.definition.counts["twitter_news"]["duplicates"] == 2


def test_split_drops_texts_whose_copies_disagree_on_the_label(tmp_path):
    split = build_split(_write_data(tmp_path))
    every = split.train + split.validation + split.test
    assert normalise_text("shares of foo are flat") not in {row.key for row in every}
    assert split.definition.counts["twitter_news"]["conflicting"] == 2
    assert split.definition.counts["fiqa_post"]["no_sign"] == 1


def test_split_is_stratified_and_the_same_for_the_same_seed(tmp_path):
    data = _write_data(tmp_path)
    first, again, other = build_split(data), build_split(data), build_split(data, seed=1)
    assert first.definition.digests == again.definition.digests
    assert first.definition.digests["test"] != other.definition.digests["test"]
    test_labels = [row.label for row in first.test if row.subset == "twitter_news"]
    assert {test_labels.count(label) for label in ("bearish", "neutral", "bullish")} == {6}


def _write_extra(root, rows):
    with (root / TWITTER_EXTRA_FILE).open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(rows)


def test_extra_tweets_are_training_rows_the_split_never_saw(tmp_path):
    data = _write_data(tmp_path)
    _write_extra(data, [
        ("$ACME profit note 0-0 https://t.co/new", "1"),  # a text of the split's file, even with another label
        ("Shares of Foo are FLAT", "2"),  # one the split dropped for disagreeing copies
        ("Brand new tweet about margins", "0"),
        ("brand new tweet about margins!", "0"),  # agreeing copy: kept once
        ("Another fresh one", "2"),
        ("another FRESH one", "1"),  # copies that disagree: neither kept
    ])
    rows = extra_training_rows(data)
    assert [(row.id, row.label) for row in rows] == [("twitter_valid:2", "bearish")]
    assert rows[0].subset == "twitter_news" and rows[0].domain == "news"


def test_the_extra_file_leaves_the_split_as_it_was(tmp_path):
    data = _write_data(tmp_path)
    before = build_split(data).definition
    _write_extra(data, [("Brand new tweet about margins", "0")])
    assert build_split(data).definition == before


def test_extra_tweets_with_an_unknown_label_are_refused(tmp_path):
    data = _write_data(tmp_path)
    _write_extra(data, [("Brand new tweet", "bullish")])
    with pytest.raises(ValueError, match=r"valid.csv: row 0: label 'bullish'"):
        extra_training_rows(data)


def test_verify_split_accepts_the_stored_definition_of_the_same_data(tmp_path):
    data = _write_data(tmp_path)
    stored = build_split(data).definition.to_json()
    assert verify_split(stored, data).definition.digests == json.loads(stored)["digests"]


def test_evaluate_refuses_weights_without_a_stored_split(tmp_path, capsys):
    data = _write_data(tmp_path / "data")
    head = _write_head(tmp_path / "head.safetensors")
    assert evaluate.main(["--head", str(head), "--data-dir", str(data)]) == 2
    assert "carry no split definition" in capsys.readouterr().err


def test_evaluate_refuses_weights_whose_split_differs_from_the_data(tmp_path, capsys):
    data = _write_data(tmp_path / "data")
    head = _write_head(
        tmp_path / "head.safetensors", split=build_split(data).definition.to_json(), eval_precision="fp32"
    )
    rows = _twitter_rows()
    rows[5] = (rows[5][0] + " revised", rows[5][1])  # one text edited: same counts, another digest
    _write_data(tmp_path / "data", twitter=rows)
    assert evaluate.main(["--head", str(head), "--data-dir", str(data)]) == 2
    assert "does not match the data" in capsys.readouterr().err


def test_evaluate_refuses_another_normalisation_version(tmp_path, capsys):
    data = _write_data(tmp_path / "data")
    definition = build_split(data).definition
    definition.normalisation = "finnorm/1"
    head = _write_head(tmp_path / "head.safetensors", split=definition.to_json(), eval_precision="fp32")
    assert evaluate.main(["--head", str(head), "--data-dir", str(data)]) == 2
    assert NORMALISATION_VERSION in capsys.readouterr().err


def test_check_head_split_returns_the_split_and_the_stored_precision(tmp_path):
    data = _write_data(tmp_path / "data")
    head = _write_head(
        tmp_path / "head.safetensors", split=build_split(data).definition.to_json(), eval_precision="fp32"
    )
    metadata, split = evaluate.check_head_split(head, data)
    assert metadata["eval_precision"] == "fp32" and split.test


def test_evaluate_refuses_the_part_the_weights_were_trained_on(tmp_path, capsys):
    data = _write_data(tmp_path / "data")
    head = _write_head(
        tmp_path / "head.safetensors",
        split=build_split(data).definition.to_json(),
        eval_precision="fp32",
        trained_on="train,validation",
    )
    assert evaluate.main(["--head", str(head), "--data-dir", str(data), "--split", "validation"]) == 2
    assert "trained on the validation part" in capsys.readouterr().err


def test_check_head_split_refuses_a_split_without_precision(tmp_path):
    data = _write_data(tmp_path / "data")
    head = _write_head(tmp_path / "head.safetensors", split=build_split(data).definition.to_json())
    with pytest.raises(SplitMismatch, match="eval_precision"):
        evaluate.check_head_split(head, data)


def test_built_sample_comes_from_the_test_part_only(tmp_path):
    data = _write_data(tmp_path)
    split = build_split(data)
    trained = parse_key_hashes(train_key_hashes(split.train + split.validation))
    rows = build_sample(data, news=10, headlines=4, social=8)
    assert len(rows) == 22 and {row.domain for row in rows} == {"news", "social"}
    assert not {key_hash(normalise_text(row.text)) for row in rows} & trained


def test_stored_evaluation_shows_the_validation_report_per_domain(tmp_path):
    numbers = {"n": 10, "accuracy": 0.8, "accuracy_ci95": [0.49, 0.94], "macro_f1": 0.7}
    metrics = {"validation": {"overall": numbers, "domain:news": numbers, "domain:social": numbers}}
    head = _write_head(tmp_path / "head.safetensors", metrics=json.dumps(metrics), eval_precision="fp32")
    rows = stored_evaluation(head)
    assert [row["dataset"].split(", ")[1].split(":")[0] for row in rows] == ["all domains", "news", "social"]
    assert rows[0]["accuracy_ci95"] == "0.490-0.940" and rows[0]["precision"] == "fp32"


def test_committed_weights_store_split_and_precision():
    _, metadata = read_head_file()
    definition = json.loads(metadata["split"])
    assert definition["normalisation"] == NORMALISATION_VERSION and len(definition["digests"]["test"]) == 64
    assert metadata["train_precision"] == metadata["eval_precision"] == "fp32"


def test_shipped_sample_is_disjoint_from_the_training_split():
    _, metadata = read_head_file()
    trained = parse_key_hashes(metadata["train_keys"])
    assert len(trained) > 5000
    sample = read_sample(SAMPLE_PATH)
    assert len(sample) == 568
    assert not [row.text for row in sample if key_hash(normalise_text(row.text)) in trained]
