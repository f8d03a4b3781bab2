"""Errors raised by the inference layer.

Hierarchy::

    InferenceError
    ├── UnknownModel            a model id that is not configured in this service
    ├── LabelMappingError       a model's id2label cannot be mapped to bearish/neutral/bullish
    ├── ModelLoadError          loading failed; `reason` is what `describe_models()` shows
    │   ├── ModelNotCached      offline and not in the local cache / model dir
    │   ├── ModelOutOfMemory    not enough host or GPU memory
    │   ├── ModelFilesInvalid   missing or corrupt files, wrong digest, unloadable config
    │   └── ModelDownloadFailed the hub could not be reached or refused the download
    ├── ModelNotReady           the model is loading, failed, or was never loaded
    ├── EngineError
    │   ├── EngineOverloaded    the bounded queue is full: back off and retry
    │   ├── EngineStopped       the engine was stopped while the request waited
    │   └── BatchSizeMismatch   the model returned a different number of outputs than inputs
    └── ModelCallTimeout        one call took longer than the service's call timeout
"""

from __future__ import annotations

__all__ = [
    "BatchSizeMismatch",
    "EngineError",
    "EngineOverloaded",
    "EngineStopped",
    "InferenceError",
    "LabelMappingError",
    "ModelCallTimeout",
    "ModelDownloadFailed",
    "ModelFilesInvalid",
    "ModelLoadError",
    "ModelNotCached",
    "ModelNotReady",
    "ModelOutOfMemory",
    "UnknownModel",
]


class InferenceError(Exception):
    """Base class of every error raised by `inference`."""


class UnknownModel(InferenceError):
    """The requested model id is not configured in this service."""

    def __init__(self, model_id: str, known: list[str]) -> None:
        self.model_id = model_id
        self.known = known
        super().__init__(f"unknown model {model_id!r}; expected one of: {', '.join(known)}")


class LabelMappingError(InferenceError):
    """A model's `config.id2label` cannot be mapped onto bearish/neutral/bullish."""


class ModelLoadError(InferenceError):
    """A model could not be loaded; `reason` is short and safe to show to clients."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class ModelNotCached(ModelLoadError):
    """The model is neither in a local dir nor in the HF cache, and the hub is offline."""


class ModelOutOfMemory(ModelLoadError):
    """Host or GPU memory is too small for the model."""


class ModelFilesInvalid(ModelLoadError):
    """The model's files are missing, corrupt, or do not match the expected digest."""


class ModelDownloadFailed(ModelLoadError):
    """The hub is enabled but the download failed (network, auth, missing repo)."""


class ModelNotReady(InferenceError):
    """The model exists in the catalog but is not available right now."""


class EngineError(InferenceError):
    """Base class of batching-engine errors."""


class EngineOverloaded(EngineError):
    """The engine's bounded queue is full; the caller should back off and retry."""


class EngineStopped(EngineError):
    """The engine was stopped before the request could run."""


class BatchSizeMismatch(EngineError):
    """The model returned a different number of outputs than the texts it was given."""


class ModelCallTimeout(InferenceError):
    """One call to a model took longer than the service allows."""
