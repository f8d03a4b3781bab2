"""The Models tab's read side: every model's status and statistics, and evaluation results."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from core.protocol import ModelEvaluation
from space import feeds
from space.cache import Memo
from space.fmt import age_of, badge, esc, fmt_age, fmt_ms
from space.parts import ScreenParts

__all__ = ["evaluation_html", "models_html", "status_kind"]

# `python -m training.evaluate --json > $DATA_DIR/evaluation.json` publishes a run to this tab.
EVALUATION_FILE = "evaluation.json"
EVALUATION_COLUMNS = ("n", "accuracy", "macro_f1", "status", "error")
_report_memo: Memo[list[dict[str, Any]]] = Memo(size=2, ttl_s=30.0)
_STATUS_KIND = {"available": "good", "loading": "warn", "failed": "bad", "skipped": "muted"}


def status_kind(status: str | None) -> str:
    """Return the badge colour of a model status."""
    return _STATUS_KIND.get(status or "", "muted")


def _rate(value: float | None) -> str:
    if value is None:
        return '<span class="muted" title="no calls yet">—</span>'
    kind = "up" if value >= 95 else "down" if value < 80 else "flat"
    return f'<span class="{kind}">{value:.1f}%</span>'


def _measured(raw: Any) -> str:
    """Accuracy per domain with its 95 % interval, from the self-evaluation (or its state)."""
    if not isinstance(raw, dict):
        return '<span class="muted">—</span>'
    evaluation = ModelEvaluation.model_validate(raw)  # models_status was validated against it when sent
    if evaluation.status != "done":
        return esc(evaluation.error or evaluation.status)
    parts = []
    for domain, numbers in sorted(evaluation.domains.items()):
        low, high = numbers.accuracy_ci95
        parts.append(
            f'<span title="macro-F1 {numbers.macro_f1}, ECE {numbers.ece} (a calibrated model: '
            f'{numbers.ece_if_calibrated}), n {numbers.n}">'
            f"{esc(domain)} {numbers.accuracy:.2f} ({low:.2f}-{high:.2f})</span>"
        )
    # Rows the model was trained on are not in its score; say so, and say when nobody knows.
    excluded = evaluation.excluded
    if excluded is not None and excluded.rows:
        parts.append(
            f'<span class="muted" title="{esc(excluded.reason)}">{excluded.rows} of {excluded.of} rows left out</span>'
        )
    elif excluded is not None and not excluded.training_data_known:
        parts.append(f'<span class="muted" title="{esc(excluded.reason)}">training data unknown</span>')
    return " · ".join(parts)


def _lock_warning(lock: Any) -> str:
    return str(lock.get("warning") or "") if isinstance(lock, dict) else ""


def _pin_label(lock: Any) -> str:
    """`pinned <commit>` or `unpinned` for a hub model (from `models_status.lock`); nothing for the others."""
    if not isinstance(lock, dict):
        return ""
    if lock.get("state") == "locked":
        revision = str(lock.get("revision") or "")
        return f' · <span class="pin" title="{esc(revision)}">pinned {esc(revision[:12])}</span>'
    return f' · <span class="pin unpinned" title="{esc(_lock_warning(lock))}">unpinned</span>'


def _reason_html(model: dict[str, Any]) -> str:
    """The state in words, the download's bytes while loading, the cost per news item, the lock's warning."""
    parts = [f"<div>{esc(model.get('reason') or model.get('error') or '')}</div>"]
    download = model.get("download")
    if model.get("status") == "loading" and isinstance(download, dict):
        total = download.get("bytes_total")
        done = download.get("bytes_done") or 0
        shown = f"{done / 2**20:.1f} of {total / 2**20:.1f} MB" if total else f"{done / 2**20:.1f} MB"
        value = f' value="{done}" max="{total}"' if total else ""
        parts.append(f'<div class="sub download"><progress{value}></progress> {esc(shown)}</div>')
    budget = model.get("budget")
    if isinstance(budget, dict) and budget.get("core_ms_per_item") is not None:
        parts.append(
            f'<div class="sub budget" title="{esc(budget.get("basis"))}">{budget["core_ms_per_item"]:.0f} core-ms '
            f"per news item ({esc(budget.get('source'))})</div>"
        )
    warning = _lock_warning(model.get("lock"))
    if warning:
        parts.append(f'<div class="sub">{esc(warning)}</div>')
    return "".join(parts)


def _runtime_html(choice: dict[str, Any] | None) -> str:
    """The variant a model runs as, how it was chosen, and each measured candidate."""
    if not choice:
        return ""
    lines = []
    for c in choice.get("candidates") or ():
        verdict = "" if c["kept"] else f" ({c['reason'] or 'not kept'})"
        speed = c["texts_per_s"] if c["texts_per_s"] is not None else "—"
        agreement = c["agreement"] if c["agreement"] is not None else "—"
        lines.append(f"{c['name']}: {speed} texts/s, agreement {agreement}{verdict}")
    title = "\n".join(lines) or (choice.get("reason") or "")
    return (
        f'<div class="sub runtime" title="{esc(title)}">{esc(choice["chosen"])} · {esc(choice["source"])}'
        f"{' on ' + esc(choice['texts']) + ' texts' if choice.get('texts') else ''}</div>"
    )


def models_html(parts: ScreenParts) -> str:
    """Return the summary and the table of the latest `models_status`, or why it is empty."""
    if parts.inference is None:
        return (
            '<div class="hub-empty" id="models-empty">The inference layer is not running on this server '
            "(ENABLE_INFERENCE=0 or it failed to start): no model is loaded, and news is published unscored."
            "</div>"
        )
    message = feeds.latest(parts.bus, "models")
    if message is None:
        return '<div class="hub-empty">Waiting for the first models_status…</div>'
    data = message["data"]
    if not data["models"]:
        return (
            '<div class="hub-empty" id="models-empty">No models loaded yet: '
            "the catalog is still being read.</div>"
        )
    summary = "".join(
        badge(f"{data[k]} {k}", kind)
        for k, kind in (
            ("total", "info"), ("available", "good"), ("loading", "warn"), ("failed", "bad"), ("skipped", "muted")
        )
        if k in data
    )
    head = "".join(
        f"<th>{h}</th>"
        for h in (
            "Model",
            "Status",
            "Success",
            "Avg",
            "p95",
            "Calls",
            "Last used",
            "Device",
            "Measured on the sample",
            "Why / progress",
        )
    )
    rows = []
    for model in data["models"]:
        used = model.get("last_used")
        last_used = f"{fmt_age(age_of(used))} ago" if used else "never"
        calls = model.get("calls")
        rows.append(
            f'<tr data-model="{esc(model["id"])}"><td><b>{esc(model["id"])}</b>'
            f'<div class="sub">{esc(model.get("type", ""))}{_pin_label(model.get("lock"))}</div></td>'
            f"<td>{badge(model['status'], status_kind(model['status']))}</td>"
            f'<td class="num">{_rate(model.get("success_rate"))}</td>'
            f'<td class="num">{fmt_ms(model.get("avg_response_time"))}</td>'
            f'<td class="num">{fmt_ms(model.get("p95_ms"))}</td>'
            f'<td class="num">{esc(calls if calls is not None else "—")}</td>'
            f"<td>{esc(last_used)}</td><td>{esc(model.get('device'))}{_runtime_html(model.get('runtime'))}</td>"
            f"<td>{_measured(model.get('evaluation'))}</td>"
            f'<td class="reason">{_reason_html(model)}</td></tr>'
        )
    return (
        f'<div class="hub-pills">{summary}</div><table class="hub-table" id="models-table">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _report_rows(path: Path) -> list[dict[str, Any]]:
    """Read the rows of a `python -m training.evaluate --json` report (numbers, or status and error)."""
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    rows = []
    for model_id, numbers in report.items() if isinstance(report, dict) else ():
        if isinstance(numbers, dict):
            kept = {k: numbers.get(k) for k in EVALUATION_COLUMNS if k in numbers}
            rows.append(
                {"model": numbers.get("model", model_id) if model_id == "ensemble" else model_id, **kept}
            )
    return rows


def _evaluations(parts: ScreenParts) -> list[dict[str, Any]]:
    results = getattr(parts.inference, "evaluation_results", None)
    if callable(results):
        return [dict(r) for r in results()]
    message = feeds.latest(parts.bus, "models")
    models = message["data"]["models"] if message else []
    rows = [{"model": m["id"], **m["evaluation"]} for m in models if isinstance(m.get("evaluation"), dict)]
    path = Path(parts.data_dir) / EVALUATION_FILE
    return rows or _report_memo.get(path, lambda: _report_rows(path))


def evaluation_html(parts: ScreenParts) -> str:
    """Return the table of evaluation results (accuracy on labelled data), or say there are none."""
    rows = _evaluations(parts)
    if not rows:
        return (
            '<div class="hub-empty">No evaluation results yet: run <code>python -m training.evaluate --json '
            f"--data FILE &gt; $DATA_DIR/{EVALUATION_FILE}</code> to show a run here.</div>"
        )
    columns = list(dict.fromkeys(k for row in rows for k in row))
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f'<td class="num">{value:.3f}</td>'
        return f"<td>{esc(value)}</td>"

    body = "".join("<tr>" + "".join(cell(row.get(c)) for c in columns) + "</tr>" for row in rows)
    return (
        f'<table class="hub-table" id="evaluation-table"><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table>"
    )
