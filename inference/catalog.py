"""The model catalog and the mapping of every model's labels onto bearish/neutral/bullish.

Ensemble weights are per text domain: `news` (headlines, articles) and `social` (tweets, reddit).
They encode where each model was fine-tuned, not a measurement on our data: a model trained on
StockTwits gets a high social weight, one trained on Financial PhraseBank a high news weight.
Binary models (no neutral class) get lower weights because they push every text away from neutral.
Override them with `InferenceService(weights=...)`; `docs/inference.md` has the table.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from core.records import SentimentLabel
from core.vocabulary import LEXICON_MODEL_ID

from .errors import LabelMappingError

__all__ = [
    "CANONICAL_LABELS",
    "CATALOG",
    "DEFAULT_MODELS",
    "EMBEDDED_MODEL_ID",
    "FIQA_2018",
    "LEXICON_MODEL_ID",
    "TRAINING_DATA",
    "TWITTER_FINANCIAL_NEWS",
    "Domain",
    "ModelKind",
    "ModelSpec",
    "TrainingData",
    "get_spec",
    "map_labels",
    "resolve_model_ids",
    "to_canonical_probs",
    "training_data",
]

Domain = Literal["news", "social"]
ModelKind = Literal["transformers", "embedded", "lexicon"]

CANONICAL_LABELS: tuple[SentimentLabel, ...] = ("bearish", "neutral", "bullish")
EMBEDDED_MODEL_ID = "embedded/minilm-finhead"


@dataclass(frozen=True)
class ModelSpec:
    """What the service knows about one model before loading it."""

    id: str
    kind: ModelKind
    domain: Literal["crypto", "finance", "general"]
    weights: Mapping[str, float] = field(default_factory=lambda: {"news": 0.5, "social": 0.5})
    # Class order to use when config.id2label only says LABEL_0, LABEL_1, ... (from the model card).
    known_order: tuple[SentimentLabel, ...] | None = None
    max_length: int = 128
    note: str = ""


def _spec(
    model_id: str,
    domain: Literal["crypto", "finance", "general"],
    news: float,
    social: float,
    known_order: tuple[SentimentLabel, ...] | None,
    note: str,
    kind: ModelKind = "transformers",
    max_length: int = 128,
) -> ModelSpec:
    return ModelSpec(
        id=model_id,
        kind=kind,
        domain=domain,
        weights={"news": news, "social": social},
        known_order=known_order,
        max_length=max_length,
        note=note,
    )


_CATALOG_SPECS = [
    _spec(
        "ElKulako/cryptobert",
        "crypto",
        0.6,
        1.0,
        ("bearish", "neutral", "bullish"),
        "RoBERTa (BERTweet) on 2M StockTwits crypto posts; Bearish/Neutral/Bullish",
    ),
    _spec(
        "kk08/CryptoBERT",
        "crypto",
        0.4,
        0.3,
        ("bearish", "bullish"),
        "FinBERT fine-tuned on crypto news; binary, LABEL_0 negative / LABEL_1 positive",
    ),
    _spec(
        "ProsusAI/finbert",
        "finance",
        1.0,
        0.4,
        ("bullish", "bearish", "neutral"),
        "BERT on Financial PhraseBank news; positive/negative/neutral",
    ),
    _spec(
        "StephanAkkerman/FinTwitBERT-sentiment",
        "finance",
        0.7,
        1.0,
        ("neutral", "bullish", "bearish"),
        "BERT pre-trained on financial tweets; NEUTRAL/BULLISH/BEARISH",
    ),
    _spec(
        "mrm8488/distilroberta-finetuned-financial-news-sentiment-analysis",
        "finance",
        0.8,
        0.3,
        ("bearish", "neutral", "bullish"),
        "DistilRoBERTa on Financial PhraseBank; negative/neutral/positive",
    ),
    _spec(
        "cardiffnlp/twitter-roberta-base-sentiment-latest",
        "general",
        0.3,
        0.6,
        ("bearish", "neutral", "bullish"),
        "RoBERTa on general tweets; negative/neutral/positive",
    ),
    _spec(
        "yiyanghkust/finbert-tone",
        "finance",
        0.7,
        0.3,
        ("neutral", "bullish", "bearish"),
        "FinBERT on analyst reports; Neutral/Positive/Negative",
    ),
    # The weight of the embedded head follows its measured held-out accuracy (docs/inference.md).
    _spec(
        EMBEDDED_MODEL_ID,
        "finance",
        0.8,
        0.6,
        ("bearish", "neutral", "bullish"),
        "all-MiniLM-L6-v2 fine-tuned on financial news tweets and FiQA, plus an n-gram model; works offline",
        kind="embedded",
    ),
    # VADER scores 0.50-0.57 on three-class financial news: it answers only when nothing else can.
    _spec(
        LEXICON_MODEL_ID,
        "general",
        0.0,
        0.0,
        ("bearish", "neutral", "bullish"),
        "VADER + crypto slang; always available, last resort",
        kind="lexicon",
    ),
]

CATALOG: dict[str, ModelSpec] = {spec.id: spec for spec in _CATALOG_SPECS}
DEFAULT_MODELS: tuple[str, ...] = tuple(CATALOG)


# The public labelled datasets the shipped evaluation sample draws from, named as its rows' `source`.
TWITTER_FINANCIAL_NEWS = "zeroshot/twitter-financial-news-sentiment"
FIQA_2018 = "FiQA-2018 task 1 (ChanceFocus/fiqa-sentiment-classification)"


@dataclass(frozen=True)
class TrainingData:
    """Which of the sample's datasets a model saw with labels while it was fine-tuned.

    `datasets` None means the model's card does not say: its score on the sample may be inflated
    and is reported as such, never silently trusted. Pre-training on unlabelled text is not counted.
    """

    datasets: tuple[str, ...] | None
    evidence: str


# From each model card (and the repository a card points to for its training setup); quoted where
# the wording decides. A model absent from this table is unknown.
TRAINING_DATA: Mapping[str, TrainingData] = {
    # Card: "CryptoBERT's sentiment classification head was fine-tuned on a balanced dataset of 2M
    # labelled StockTwits posts, sampled from ElKulako/stocktwits-crypto" (crypto posts, Nov 2021 -
    # Jun 2022). Neither of the sample's datasets.
    "ElKulako/cryptobert": TrainingData(
        (), "fine-tuned on 2M labelled StockTwits crypto posts (ElKulako/stocktwits-crypto)"
    ),
    # Card: "fine-tuned version of ProsusAI/finbert on the Custom Crypto Market Sentiment dataset",
    # a dataset it does not publish or describe further.
    "kk08/CryptoBERT": TrainingData(None, "fine-tuned on an unpublished 'Custom Crypto Market Sentiment dataset'"),
    # Card: "Financial PhraseBank by Malo et al. (2014) is used for fine-tuning."
    "ProsusAI/finbert": TrainingData((), "fine-tuned on Financial PhraseBank (Malo et al. 2014)"),
    # Card: `datasets: TimKoornstra/financial-tweets-sentiment` (whose sources start with "FIQA
    # Sentiment Classification"), and "For a comprehensive overview, including the training setup
    # ..., visit the FinTwitBERT GitHub repository", whose "Finetuning Datasets" table lists
    # ChanceFocus_fiqa.csv and zeroshot_twitter-financial-news-sentiment.csv (11,931 rows: both
    # splits). Every row of the sample comes from one of the two.
    "StephanAkkerman/FinTwitBERT-sentiment": TrainingData(
        (FIQA_2018, TWITTER_FINANCIAL_NEWS),
        "fine-tuned on TimKoornstra/financial-tweets-sentiment, which includes FiQA and "
        "twitter-financial-news-sentiment (the FinTwitBERT repository's fine-tuning table)",
    ),
    # Card: "fine-tuned version of distilroberta-base on the financial_phrasebank dataset".
    "mrm8488/distilroberta-finetuned-financial-news-sentiment-analysis": TrainingData(
        (), "fine-tuned on Financial PhraseBank"
    ),
    # Card: "trained on ~124M tweets from January 2018 to December 2021, and finetuned for sentiment
    # analysis with the TweetEval benchmark" (the tweets are unlabelled pre-training).
    "cardiffnlp/twitter-roberta-base-sentiment-latest": TrainingData((), "fine-tuned on TweetEval sentiment"),
    # Card: "fine-tuned on 10,000 manually annotated (positive, negative, neutral) sentences from
    # analyst reports".
    "yiyanghkust/finbert-tone": TrainingData((), "fine-tuned on 10,000 analyst-report sentences"),
    # Trained here on parts of both datasets; which rows is known exactly: the weights store a hash
    # of every training text (`train_keys`), and only those rows are left out (trainingrows.py).
    EMBEDDED_MODEL_ID: TrainingData(
        (TWITTER_FINANCIAL_NEWS, FIQA_2018),
        "its own training split, matched row by row by the train_keys stored in its weights",
    ),
    LEXICON_MODEL_ID: TrainingData((), "a word list, not trained on labelled text"),
}


def training_data(model_id: str) -> TrainingData:
    """Return what a model was fine-tuned on, as far as the shipped sample goes (unknown when uncatalogued)."""
    return TRAINING_DATA.get(model_id) or TrainingData(None, "not in the catalog: its training data is unknown")


def get_spec(model_id: str) -> ModelSpec:
    """Return the catalog entry of a model, or a generic one for an uncatalogued hub id."""
    spec = CATALOG.get(model_id)
    if spec is not None:
        return spec
    # Uncatalogued hub models are allowed: their labels must then be named in config.id2label.
    return ModelSpec(id=model_id, kind="transformers", domain="general", note="not in the catalog")


def resolve_model_ids(models: Sequence[str] | None) -> list[str]:
    """Return the ids to serve, in fallback order, with the lexicon always last.

    None means the whole catalog. Uncatalogued ids must look like hub ids (`org/name`) or paths.

    Raises:
        ValueError: an id that is neither catalogued nor `org/name`, or a duplicate.
    """
    ids = [
        model_id.strip() for model_id in (DEFAULT_MODELS if models is None else models) if model_id.strip()
    ]
    for model_id in ids:
        if model_id not in CATALOG and "/" not in model_id:
            raise ValueError(
                f"model {model_id!r} is neither in the catalog nor a hub id 'org/name'; "
                f"catalog: {', '.join(DEFAULT_MODELS)}"
            )
    if len(set(ids)) != len(ids):
        raise ValueError(f"duplicate model ids in {ids}")
    return [model_id for model_id in ids if model_id != LEXICON_MODEL_ID] + [LEXICON_MODEL_ID]


# Names seen in the wild for each canonical label (lower-cased, punctuation stripped).
_LABEL_ALIASES: dict[str, SentimentLabel] = {
    "bearish": "bearish",
    "negative": "bearish",
    "neg": "bearish",
    "bear": "bearish",
    "neutral": "neutral",
    "neu": "neutral",
    "notr": "neutral",
    "bullish": "bullish",
    "positive": "bullish",
    "pos": "bullish",
    "bull": "bullish",
}
_GENERIC_LABEL = re.compile(r"^label[_ ]?(\d+)$")


def map_labels(
    id2label: Mapping[int, str] | Mapping[str, str],
    *,
    known_order: Sequence[SentimentLabel] | None = None,
    model_id: str = "",
) -> tuple[SentimentLabel, ...]:
    """Map class index i of a model's logits to a canonical label, through its own id2label.

    Named labels (positive, Bearish, NEUTRAL...) win. Generic ones (LABEL_0, LABEL_1...) use
    `known_order`, taken from the model card. Two classes are accepted when they are
    bearish and bullish (binary models); neutral then gets probability 0.

    Raises:
        LabelMappingError: unknown names, duplicates, a missing pole, or generic names
            without a known order.
    """
    if not id2label:
        raise LabelMappingError(f"{model_id or 'model'}: config.id2label is empty; expected 2 or 3 labels")
    by_index = {int(index): str(name) for index, name in id2label.items()}
    if sorted(by_index) != list(range(len(by_index))):
        raise LabelMappingError(
            f"{model_id or 'model'}: id2label indices {sorted(by_index)} are not 0..{len(by_index) - 1}"
        )
    names = [by_index[i] for i in range(len(by_index))]
    mapped: list[SentimentLabel] = []
    for index, name in enumerate(names):
        key = re.sub(r"[^a-z0-9_ ]", "", name.strip().lower())
        alias = _LABEL_ALIASES.get(key)
        if alias is not None:
            mapped.append(alias)
            continue
        generic = _GENERIC_LABEL.match(key)
        if generic and known_order is not None and len(known_order) == len(names):
            mapped.append(known_order[int(generic.group(1))])
            continue
        hint = " (generic names need a known class order in the catalog)" if generic else ""
        raise LabelMappingError(
            f"{model_id or 'model'}: cannot map label {index}={name!r} to bearish/neutral/bullish{hint}"
        )
    if len(set(mapped)) != len(mapped):
        raise LabelMappingError(f"{model_id or 'model'}: labels {names} map to duplicates {mapped}")
    if not {"bearish", "bullish"} <= set(mapped):
        raise LabelMappingError(
            f"{model_id or 'model'}: labels {names} must include both a bearish and a bullish class"
        )
    return tuple(mapped)


def to_canonical_probs(row: Sequence[float], mapping: Sequence[SentimentLabel]) -> dict[str, float]:
    """Turn one row of class probabilities into {bearish, neutral, bullish} (missing classes get 0)."""
    if len(row) != len(mapping):
        raise LabelMappingError(f"expected {len(mapping)} class probabilities, got {len(row)}")
    probs: dict[str, float] = dict.fromkeys(CANONICAL_LABELS, 0.0)
    for label, value in zip(mapping, row, strict=True):
        probs[label] += float(value)
    return probs
