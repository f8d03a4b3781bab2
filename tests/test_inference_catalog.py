"""Label mapping from each model's own id2label, and the catalog's contents."""

from __future__ import annotations

import pytest

from core.config import Settings
from inference.catalog import (
    CATALOG,
    DEFAULT_MODELS,
    EMBEDDED_MODEL_ID,
    LEXICON_MODEL_ID,
    map_labels,
    to_canonical_probs,
)
from inference.errors import LabelMappingError


def test_map_labels_finbert_positive_negative_neutral():
    assert map_labels({0: "positive", 1: "negative", 2: "neutral"}) == ("bullish", "bearish", "neutral")


def test_map_labels_fintwitbert_uppercase_names():
    assert map_labels({"0": "NEUTRAL", "1": "BULLISH", "2": "BEARISH"}) == ("neutral", "bullish", "bearish")


def test_map_labels_generic_names_use_known_order():
    spec = CATALOG["yiyanghkust/finbert-tone"]
    labels = map_labels({0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}, known_order=spec.known_order)
    assert labels == ("neutral", "bullish", "bearish")


def test_map_labels_kk08_binary_is_negative_positive():
    spec = CATALOG["kk08/CryptoBERT"]
    assert map_labels({0: "LABEL_0", 1: "LABEL_1"}, known_order=spec.known_order) == ("bearish", "bullish")


def test_map_labels_generic_without_known_order_raises():
    with pytest.raises(LabelMappingError, match="known class order"):
        map_labels({0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}, model_id="someone/model")


def test_map_labels_unknown_name_raises():
    with pytest.raises(LabelMappingError, match="'joy'"):
        map_labels({0: "joy", 1: "negative", 2: "positive"})


def test_map_labels_without_bearish_pole_raises():
    with pytest.raises(LabelMappingError, match="bearish and a bullish"):
        map_labels({0: "neutral", 1: "positive"})


def test_map_labels_duplicates_raise():
    with pytest.raises(LabelMappingError, match="duplicates"):
        map_labels({0: "negative", 1: "bearish", 2: "positive"})


def test_to_canonical_probs_binary_gives_zero_neutral():
    assert to_canonical_probs([0.2, 0.8], ("bearish", "bullish")) == {
        "bearish": 0.2,
        "neutral": 0.0,
        "bullish": 0.8,
    }


def test_catalog_lists_hub_models_embedded_and_lexicon_in_order():
    assert DEFAULT_MODELS[:2] == ("ElKulako/cryptobert", "kk08/CryptoBERT")
    assert DEFAULT_MODELS[-2:] == (EMBEDDED_MODEL_ID, LEXICON_MODEL_ID)
    assert len(DEFAULT_MODELS) == 9
    assert all(spec.domain in ("crypto", "finance", "general") for spec in CATALOG.values())


def test_catalog_known_orders_match_published_configs():
    """Named id2label of each published config maps to the same order the catalog keeps."""
    published = {
        "ElKulako/cryptobert": {0: "Bearish", 1: "Neutral", 2: "Bullish"},
        "ProsusAI/finbert": {0: "positive", 1: "negative", 2: "neutral"},
        "StephanAkkerman/FinTwitBERT-sentiment": {0: "NEUTRAL", 1: "BULLISH", 2: "BEARISH"},
        "mrm8488/distilroberta-finetuned-financial-news-sentiment-analysis": {
            0: "negative",
            1: "neutral",
            2: "positive",
        },
        "cardiffnlp/twitter-roberta-base-sentiment-latest": {0: "negative", 1: "neutral", 2: "positive"},
        "yiyanghkust/finbert-tone": {0: "Neutral", 1: "Positive", 2: "Negative"},
    }
    for model_id, id2label in published.items():
        assert map_labels(id2label) == CATALOG[model_id].known_order, model_id


def test_every_catalog_model_passes_the_models_setting() -> None:
    """MODELS is checked in core (no `org/` part only for the lexicon); the catalog must stay within it."""
    assert Settings.from_env({"MODELS": ",".join(CATALOG)}).models == tuple(CATALOG)
