"""No model is graded on rows it was trained on: the catalog's evidence and the head's stored hashes."""

from __future__ import annotations

from inference.catalog import EMBEDDED_MODEL_ID, FIQA_2018, TRAINING_DATA, TWITTER_FINANCIAL_NEWS
from inference.evalsample import read_sample
from inference.trainingrows import head_train_keys, key_hash, normalise_text, training_overlap
from training.evalsample import FIQA_SOURCE, TWITTER_SOURCE

FINTWITBERT = "StephanAkkerman/FinTwitBERT-sentiment"


def _sample() -> tuple[list[str], list[str]]:
    rows = read_sample()
    return [row.text for row in rows], [row.source for row in rows]


def test_sample_sources_are_the_catalogs_dataset_names():
    assert (TWITTER_SOURCE, FIQA_SOURCE) == (TWITTER_FINANCIAL_NEWS, FIQA_2018)
    assert {source for _, source in zip(*_sample(), strict=True)} <= {TWITTER_FINANCIAL_NEWS, FIQA_2018}


def test_fintwitbert_was_fine_tuned_on_every_row_of_the_sample():
    texts, sources = _sample()
    overlap = training_overlap(FINTWITBERT, texts, sources)
    assert len(overlap.excluded) == len(texts) and "FiQA" in overlap.reason
    assert overlap.exclusion().rows == overlap.exclusion().of == len(texts)


def test_model_trained_on_other_datasets_keeps_every_row():
    texts, sources = _sample()
    overlap = training_overlap("ProsusAI/finbert", texts, sources)
    assert overlap.excluded == frozenset() and overlap.known and "PhraseBank" in overlap.reason


def test_model_with_unknown_training_data_is_scored_and_says_unknown():
    texts, sources = _sample()
    for model_id in ("kk08/CryptoBERT", "someone/uncatalogued"):
        overlap = training_overlap(model_id, texts, sources)
        assert overlap.excluded == frozenset() and not overlap.known and "unknown" in overlap.reason


def test_every_catalog_model_has_training_evidence():
    from inference.catalog import CATALOG

    assert set(CATALOG) <= set(TRAINING_DATA)
    assert all(data.evidence for data in TRAINING_DATA.values())


def test_embedded_head_leaves_out_exactly_the_rows_in_its_train_keys():
    texts = ["$AAPL beats estimates", "Oil slides on supply fears", "BTC breaks out"]
    keys = {key_hash(normalise_text("aapl beats ESTIMATES!"))}  # the same text once normalised
    overlap = training_overlap(EMBEDDED_MODEL_ID, texts, None, train_keys=keys)
    assert overlap.excluded == frozenset({0}) and "train_keys" in overlap.reason


def test_embedded_head_without_stored_keys_is_unknown_not_clean():
    overlap = training_overlap(EMBEDDED_MODEL_ID, ["a"], None, train_keys=None)
    assert overlap.excluded == frozenset() and not overlap.known


def test_shipped_weights_store_their_training_hashes():
    keys = head_train_keys()
    assert keys is not None and len(keys) > 1000 and all(len(key) == 16 for key in keys)
