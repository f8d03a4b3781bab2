"""The sentiment models the server runs: loading, per-model batching, the ensemble, self-evaluation, statistics.

Local transformers models, the embedded head and the crypto lexicon, behind `InferenceService`.
The offline tools that train, evaluate and lock these models are `training/`'s.
"""

from __future__ import annotations

from .catalog import CATALOG, DEFAULT_MODELS, EMBEDDED_MODEL_ID, LEXICON_MODEL_ID, ModelSpec, map_labels
from .engine import BatchEngine
from .errors import (
    BatchSizeMismatch,
    EngineOverloaded,
    EngineStopped,
    InferenceError,
    LabelMappingError,
    ModelCallTimeout,
    ModelLoadError,
    ModelNotCached,
    ModelNotReady,
    UnknownModel,
)
from .lexicon import CryptoLexicon
from .loader import ModelStatus
from .service import InferenceService
from .stats import JsonStatsStore, ModelStats, StatsRegistry, StatsStore

__all__ = [
    "CATALOG",
    "DEFAULT_MODELS",
    "EMBEDDED_MODEL_ID",
    "LEXICON_MODEL_ID",
    "BatchEngine",
    "BatchSizeMismatch",
    "CryptoLexicon",
    "EngineOverloaded",
    "EngineStopped",
    "InferenceError",
    "InferenceService",
    "JsonStatsStore",
    "LabelMappingError",
    "ModelCallTimeout",
    "ModelLoadError",
    "ModelNotCached",
    "ModelNotReady",
    "ModelSpec",
    "ModelStats",
    "ModelStatus",
    "StatsRegistry",
    "StatsStore",
    "UnknownModel",
    "map_labels",
]
