"""The Models tab's playground: score a visitor's text with every available model and the ensemble.

It goes through the app's own batched inference service, never a model directly, so
visitors share the batcher with the news pipeline instead of queueing behind each other. It is a
public API (`score_text`), so each call pays like REST: `PLAYGROUND_COST` tokens from the
caller's budget, then a turn in the anonymous scoring lane shared with `POST /api/sentiment`
(`core/lane.py`). A refusal is a `gr.Error` with a readable reason (gradio_client raises it as
`AppError`; the page shows it as a toast).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from typing import TYPE_CHECKING, Any, Literal

import gradio as gr
import plotly.graph_objects as go

from core.lane import LaneFull, ScoringLane
from core.token_bucket import ClientAccount
from space import charts
from space.fmt import badge, esc

if TYPE_CHECKING:
    from inference import InferenceService

__all__ = ["ENSEMBLE", "INFERENCE_OFF", "MAX_TEXT_CHARS", "PLAYGROUND_COST", "playground_status", "score_text"]

ENSEMBLE = "ensemble"
MAX_TEXT_CHARS = 2000
CALL_TIMEOUT_S = 30.0
# One text through the ensemble and again through every model on its own: the work of two texts
# of `POST /api/sentiment`, which pays one token per text.
PLAYGROUND_COST = 2.0
_LABEL_KIND = {"bullish": "good", "bearish": "bad", "neutral": "muted"}


INFERENCE_OFF = (
    "<b>Inference is off on this server</b>: no model is running (ENABLE_INFERENCE=0 or the inference "
    "layer failed to start), so the playground cannot score text."
)


def playground_status(inference: InferenceService | None) -> str:
    """Say what will answer a playground request: which models, or that none can."""
    if inference is None:
        return _notice(INFERENCE_OFF, "playground-off")
    models = list(inference.describe_models())
    available = [m["id"] for m in models if m.get("status") == "available"]
    if not available:
        return _notice(
            f"No models loaded yet ({len(models)} in the catalog): the ensemble answers with what it has."
        )
    names = ", ".join(f"<code>{esc(name)}</code>" for name in available)
    return (
        f'<p class="sub" id="playground-models">Scored by the ensemble and {len(available)} models: '
        f"{names}.</p>"
    )


def _notice(text: str, element_id: str = "playground-status") -> str:
    return f'<div class="hub-empty" id="{element_id}">{text}</div>'


async def _timed(coroutine: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    result = await asyncio.wait_for(coroutine, CALL_TIMEOUT_S)
    return result, (time.perf_counter() - started) * 1000


async def score_text(
    inference: InferenceService | None, text: str, domain: str, *, account: ClientAccount | None = None,
    lane: ScoringLane | None = None,
) -> tuple[go.Figure, str]:
    """Return (bar chart of probabilities per model, table of labels and scores) for one text.

    Raises:
        gr.Error: the caller's budget (`account`) cannot pay, or the scoring `lane` is full.
    """
    text = (text or "").strip()[:MAX_TEXT_CHARS]
    if not text:
        return charts.playground_bars([]), _notice(
            "Type a sentence first, e.g. “Bitcoin ETF inflows hit a record”."
        )
    if inference is None:
        return (
            charts.empty_figure("Inference is off on this server", height=300),
            _notice(INFERENCE_OFF, "playground-off"),
        )
    if account is not None and (wait_s := account.charge(PLAYGROUND_COST)) is not None:
        reason = account.budgets.refusal(wait_s) + f" (a playground call counts as {PLAYGROUND_COST:g})"
        raise gr.Error(reason, title="Too many requests", print_exception=False)
    if lane is None:
        rows, table = await _score_all(inference, text, domain)
        return charts.playground_bars(rows), table
    try:
        async with lane.admit():
            rows, table = await _score_all(inference, text, domain)
            # Building a plotly figure takes tens of milliseconds of pure Python: on the lane's
            # threads, not on the event loop that streams prices and news.
            return await lane.run(charts.playground_bars, rows), table
    except LaneFull as exc:
        raise gr.Error(str(exc), title="Busy", print_exception=False) from exc


async def _score_all(
    inference: InferenceService, text: str, domain: str
) -> tuple[list[tuple[str, dict[str, float]]], str]:
    """Score with the ensemble and each model; return the chart's rows and the results table."""
    models = list(inference.describe_models())
    available = [m["id"] for m in models if m.get("status") == "available"]
    scored_as: Literal["news", "social"] = "social" if domain == "social" else "news"
    # A named model must answer for itself: the service would otherwise hand a failure to the next model.
    own = {"fallback": False} if "fallback" in inspect.signature(inference.score).parameters else {}
    calls = {ENSEMBLE: inference.score([text], domain=scored_as)}
    calls.update({model: inference.score([text], domain=scored_as, model=model, **own) for model in available})
    outcomes = await asyncio.gather(*(_timed(c) for c in calls.values()), return_exceptions=True)
    rows: list[tuple[str, dict[str, float]]] = []
    lines = []
    for name, outcome in zip(calls, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            reason = (
                "timed out" if isinstance(outcome, TimeoutError) else f"{type(outcome).__name__}: {outcome}"
            )
            lines.append(
                f"<tr><td><b>{esc(name)}</b></td><td>{badge('failed', 'bad')}</td>"
                f'<td colspan="3" class="reason">{esc(reason[:200])}</td></tr>'
            )
            continue
        results, elapsed_ms = outcome
        result = results[0]
        rows.append((name, dict(result.probs)))
        lines.append(
            f'<tr data-model="{esc(name)}"><td><b>{esc(name)}</b>'
            f"{'<div class=sub>' + esc(result.model) + '</div>' if name == ENSEMBLE and result.model else ''}"
            f"</td><td>{badge(result.label, _LABEL_KIND.get(result.label, 'muted'))}</td>"
            f'<td class="num">{result.score:+.3f}</td><td class="num">{result.confidence:.2f}</td>'
            f'<td class="num">{elapsed_ms:,.0f} ms</td></tr>'
        )
    note = ""
    if not available:
        loading = sum(1 for m in models if m.get("status") == "loading")
        failed = sum(1 for m in models if m.get("status") == "failed")
        note = _notice(
            f"No models loaded yet ({loading} loading, {failed} failed): only the ensemble answered."
        )
    table = (
        '<table class="hub-table" id="playground-results"><thead><tr><th>Model</th><th>Label</th>'
        "<th>Score (bull − bear)</th><th>Confidence</th><th>Time</th></tr></thead>"
        f"<tbody>{''.join(lines)}</tbody></table>"
    )
    return rows, note + table
