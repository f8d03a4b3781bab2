"""Names and bounds some settings must be drawn from, kept in core so the settings can check them.

Core is the bottom layer: `core/config.py` cannot import `sources/` or `inference/`, so the few lists
a setting is checked against live here, and the layer that gives them meaning imports them (or a test
pins that its own table agrees).
"""

from __future__ import annotations

from typing import Literal, get_args

__all__ = [
    "CPU_ONLY_PRECISIONS", "CUDA_ONLY_PRECISIONS", "JOURNAL_KEEP", "LEXICON_MODEL_ID", "MAX_SYMBOL_LENGTH",
    "PRECISIONS", "TRACKABLE_SYMBOLS", "Precision", "precision_misfit",
]

# The assets the live providers can be asked for; `sources/symbols.py` maps each to every provider's id
# (tests/test_config.py pins that the two agree). The simulator walks any symbol.
TRACKABLE_SYMBOLS: tuple[str, ...] = (
    "BTC", "ETH", "USDT", "XRP", "BNB", "SOL", "USDC", "DOGE", "TRX", "ADA",
    "LINK", "AVAX", "XLM", "SUI", "BCH", "HBAR", "TON", "LTC", "SHIB", "DOT",
)

# The longest symbol a setting or a client message may name.
MAX_SYMBOL_LENGTH = 15

# How a model runs (`INFERENCE_PRECISION`); `auto` measures the others at load (inference/autotune.py).
Precision = Literal["auto", "fp32", "bf16", "fp16", "int8", "onnx-fp32", "onnx-int8"]
PRECISIONS: tuple[str, ...] = get_args(Precision)
CUDA_ONLY_PRECISIONS: frozenset[str] = frozenset({"fp16"})  # fp16 matmuls on CPU are slow
CPU_ONLY_PRECISIONS: frozenset[str] = frozenset({"int8", "onnx-fp32", "onnx-int8"})


def precision_misfit(precision: str, device: str) -> str | None:
    """Return why `INFERENCE_PRECISION=precision` cannot run on `device`, or None when it can.

    The settings ask it for an explicit `DEVICE`; the inference layer asks again once `DEVICE=auto`
    has chosen, so both refuse in the same words.
    """
    if device.startswith("cuda"):
        if precision in CPU_ONLY_PRECISIONS:
            return (f"INFERENCE_PRECISION={precision} is CPU-only, and the device is {device}: "
                    "use fp16, bf16, fp32 or auto")
    elif precision in CUDA_ONLY_PRECISIONS:
        return (f"INFERENCE_PRECISION={precision} needs CUDA (CPU fp16 matmuls are slow), and the device is "
                f"{device}: use bf16, int8, fp32 or auto")
    return None

# The one catalog model id without an `org/` part; every other id in `MODELS` is `org/name` or a path.
LEXICON_MODEL_ID = "lexicon"

# Journal rows kept per topic (core/store/journal.py): the resume window, and all a restart can replay, so
# `HISTORY_SIZE` may not ask for more.
JOURNAL_KEEP = 5000
