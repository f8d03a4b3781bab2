"""Tiny BERT- and RoBERTa-shaped classifiers, laid out as a local HF hub cache, for inference tests.

Every model is built here from a seed: a few KB of weights and a tokenizer trained on a dozen
sentences, so loading by hub id works with HF_HUB_OFFLINE=1 and nothing touches the network.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pytest
import torch

from core.config import InferenceSection

if TYPE_CHECKING:
    from inference import InferenceService

FAKE_COMMIT = "0123456789abcdef0123456789abcdef01234567"
CORPUS = [
    "bitcoin price rallies to a record high",
    "ethereum crashes as the market sells off",
    "the sec approves the bitcoin etf",
    "exchange hacked and funds drained",
    "btc moves sideways in a quiet market",
    "solana network is down again",
    "stocks rise after strong earnings",
]
Family = Literal["bert", "roberta"]
WORDS = sorted({word for line in CORPUS for word in line.split()})

# Model ids the fixture installs in the cache, with what their classifier is forced to answer.
BERT_POSNEG = "tests/tiny-bert-posneg"  # id2label positive/negative/neutral, always class 0 -> bullish
ROBERTA_NEGPOS = "tests/tiny-roberta-negpos"  # id2label negative/neutral/positive, always class 0 -> bearish
BERT_RANDOM = "tests/tiny-bert-random"  # Bearish/Neutral/Bullish, seeded random weights: varies by text
BERT_GENERIC = "tests/tiny-bert-generic"  # LABEL_0/LABEL_1 and not in the catalog: cannot be mapped
KK08 = "kk08/CryptoBERT"  # binary LABEL_0/LABEL_1 under the catalog id: mapped negative/positive


def _force_class(linear: torch.nn.Linear, index: int) -> None:
    """Make a classifier layer answer `index` for every input (known output, whatever the text)."""
    with torch.no_grad():
        linear.weight.zero_()
        linear.bias.zero_()
        linear.bias[index] = 6.0


def build_tiny_classifier(
    family: Family,
    out: Path,
    id2label: dict[int, str],
    *,
    favour: int | None = None,
    seed: int = 0,
    dims: Mapping[str, int] | None = None,
) -> Path:
    """Save a 2-layer, 32-wide sequence classifier of `family` and its tokenizer; return `out`.

    BERT gets a WordPiece tokenizer over WORDS, RoBERTa a byte-level BPE one trained on CORPUS. `dims`
    overrides the config's sizes (a full-size model with the same small tokenizer); `favour` makes the
    classifier answer that class for every input.
    """
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer, RobertaForSequenceClassification

    small = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
    if family == "bert":
        vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
        tokenizer: Any = BertTokenizer(vocab={token: index for index, token in enumerate(vocab)})
        config: Any = BertConfig(vocab_size=len(vocab), max_position_embeddings=64, id2label=id2label,
                                 label2id={name: index for index, name in id2label.items()})
    else:
        tokenizer = train_roberta_tokenizer(CORPUS * 3, vocab_size=320, min_frequency=1)
        config = roberta_config(id2label, vocab_size=len(tokenizer), max_position_embeddings=66)
    config.update({**small, **(dims or {})})
    torch.manual_seed(seed)
    if family == "bert":
        bert = BertForSequenceClassification(config).eval()  # type: ignore[no-untyped-call]
        model, classifier = bert, bert.classifier
    else:
        roberta = RobertaForSequenceClassification(config).eval()  # type: ignore[no-untyped-call]
        model, classifier = roberta, roberta.classifier.out_proj
    if favour is not None:
        _force_class(classifier, favour)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def train_roberta_tokenizer(texts: Sequence[str], *, vocab_size: int, min_frequency: int) -> Any:
    """Return a RobertaTokenizer whose byte-level BPE vocabulary was trained on `texts`."""
    import json

    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaTokenizer

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        list(texts),
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
        show_progress=False,
    )
    # The trained merges are only reachable through the serialised tokenizer.
    state = json.loads(bpe._tokenizer.to_str())
    merges = [tuple(pair) if isinstance(pair, list) else tuple(pair.split()) for pair in state["model"]["merges"]]
    return RobertaTokenizer(vocab=bpe.get_vocab(), merges=merges)  # type: ignore[arg-type]


def roberta_config(id2label: Mapping[int, str], **sizes: int) -> Any:
    """Return a RobertaConfig with RoBERTa's special-token ids and `id2label`; `sizes` override its dimensions."""
    from transformers import RobertaConfig

    config = RobertaConfig(
        type_vocab_size=1,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        id2label=dict(id2label),
        label2id={name: index for index, name in id2label.items()},
    )
    config.update(sizes)
    return config


def install_in_hub_cache(cache_dir: Path, repo_id: str, model_dir: Path, commit: str = FAKE_COMMIT) -> Path:
    """Lay a saved model out as `models--org--name/{refs/main,snapshots/<commit>/}` in a hub cache."""
    repo = cache_dir / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    shutil.copytree(model_dir, snapshot, dirs_exist_ok=True)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return snapshot


@dataclass(frozen=True)
class TinyHub:
    """A hub cache holding the tiny models."""

    cache_dir: Path


@pytest.fixture(scope="session")
def tiny_hub(tmp_path_factory: pytest.TempPathFactory) -> TinyHub:
    """Build the tiny models once per session and install them in a fresh hub cache."""
    root = tmp_path_factory.mktemp("tiny-models")
    cache = root / "hub"
    builds = {
        BERT_POSNEG: build_tiny_classifier("bert", root / "a", {0: "positive", 1: "negative", 2: "neutral"}, favour=0),
        ROBERTA_NEGPOS: build_tiny_classifier(
            "roberta",
            root / "b", {0: "negative", 1: "neutral", 2: "positive"}, favour=0
        ),
        BERT_RANDOM: build_tiny_classifier("bert", root / "c", {0: "Bearish", 1: "Neutral", 2: "Bullish"}, seed=1),
        BERT_GENERIC: build_tiny_classifier("bert", root / "d", {0: "LABEL_0", 1: "LABEL_1"}),
        KK08: build_tiny_classifier("bert", root / "e", {0: "LABEL_0", 1: "LABEL_1"}, favour=1),
    }
    for repo_id, path in builds.items():
        install_in_hub_cache(cache, repo_id, path)
    return TinyHub(cache_dir=cache)


@pytest.fixture
def offline_hub(tiny_hub: TinyHub, monkeypatch: pytest.MonkeyPatch) -> Iterator[TinyHub]:
    """Point the hub cache at the tiny cache and switch the hub off for one test.

    huggingface_hub reads HF_HUB_OFFLINE / HF_HUB_CACHE once, at import, and the loader's defaults
    ask it; the environment is set too for app processes a test starts.
    """
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tiny_hub.cache_dir))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tiny_hub.cache_dir))
    yield tiny_hub


# The service's own keywords; every other override of build_service() is a field of InferenceSection.
_SERVICE_KEYWORDS = ("weights", "call_timeout_s", "max_queue", "micro_batch", "stats_flush_s", "sample_path")


def inference_section(**overrides: Any) -> InferenceSection:
    """The settings' inference section for a test: on CPU, no self-evaluation, huggingface_hub's offline switch."""
    from inference.loader import hub_offline

    return InferenceSection(**{"device": "cpu", "self_evaluate": False, "hf_hub_offline": hub_offline(), **overrides})


def build_service(models: Sequence[str], data_dir: Path | None = None, **overrides: Any) -> InferenceService:
    """An InferenceService of `models` whose statistics and runtime choices live in `data_dir` (None: memory)."""
    from inference import InferenceService, JsonStatsStore

    own = {key: overrides.pop(key) for key in _SERVICE_KEYWORDS if key in overrides}
    stats = JsonStatsStore(data_dir / "inference_stats.json") if data_dir is not None else None
    section = inference_section(models=tuple(models), **overrides)
    return InferenceService(section, runtime_dir=data_dir, stats_store=stats, **own)


async def running_service(
    models: Sequence[str], data_dir: Path | None = None, timeout_s: float = 60.0, **overrides: Any
) -> InferenceService:
    """`build_service()`'s service, started, once every model is available or failed (fp32 unless told)."""
    service = build_service(models, data_dir, **{"inference_precision": "fp32", **overrides})
    await service.start()
    await service.wait_until_loaded(timeout_s)
    return service
