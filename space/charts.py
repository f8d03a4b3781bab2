"""Plotly figures of the UI. Pure: each takes plain data and returns a figure, never reads the bus or the store."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go

__all__ = [
    "FG_BANDS",
    "empty_figure",
    "fear_greed_gauge",
    "fear_greed_history",
    "playground_bars",
    "price_chart",
    "requests_chart",
    "sentiment_trend",
]

UP, DOWN, ACCENT, MUTED = "#16a34a", "#dc2626", "#6366f1", "#94a3b8"
LABEL_COLOURS = {"bearish": DOWN, "neutral": MUTED, "bullish": UP}
# alternative.me's bands: 0-24 extreme fear, 25-46 fear, 47-54 neutral, 55-75 greed, 76-100 extreme greed.
FG_BANDS = (
    (0, 25, "#dc2626"),
    (25, 47, "#f97316"),
    (47, 55, "#eab308"),
    (55, 76, "#84cc16"),
    (76, 100, "#16a34a"),
)


def _layout(fig: go.Figure, *, height: int = 320, title: str | None = None, **extra: Any) -> go.Figure:
    fig.update_layout(
        height=height,
        margin={"l": 48, "r": 16, "t": 40 if title else 16, "b": 36},
        paper_bgcolor="rgba(0,0,0,0)",
        plot_bgcolor="rgba(0,0,0,0)",
        font={"family": "system-ui, -apple-system, Segoe UI, sans-serif", "size": 12, "color": "#64748b"},
        title={"text": title, "x": 0, "font": {"size": 14}} if title else None,
        legend={"orientation": "h", "y": -0.18, "x": 0},
        uirevision="keep",  # keep a visitor's zoom when the data refreshes
        **extra,
    )
    fig.update_xaxes(gridcolor="rgba(148,163,184,0.25)", zeroline=False)
    fig.update_yaxes(gridcolor="rgba(148,163,184,0.25)", zeroline=False)
    return fig


def _line(
    points: Sequence[tuple[Any, float]], name: str | None = None, *, line: dict[str, Any], **trace: Any
) -> go.Scatter:
    """A line through (time, value) points, drawn as `line` says (colour, width, dash), with `trace`'s extras."""
    return go.Scatter(x=[t for t, _ in points], y=[v for _, v in points], mode="lines", line=line, name=name, **trace)


def empty_figure(message: str, height: int = 280) -> go.Figure:
    """Return a blank figure that says why there is nothing to draw."""
    fig = go.Figure()
    fig.add_annotation(
        text=message,
        showarrow=False,
        x=0.5,
        y=0.5,
        xref="paper",
        yref="paper",
        font={"size": 14, "color": "#64748b"},
    )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _layout(fig, height=height)


def price_chart(
    symbol: str,
    buckets: Sequence[dict[str, Any]],
    ticks: Sequence[tuple[str, float]],
    interval: str,
    source: str,
) -> go.Figure:
    """Draw stored buckets (close line with a high/low band) and the recent in-memory ticks."""
    if not buckets and not ticks:
        return empty_figure(
            f"No stored prices for {symbol} yet: they are saved every few seconds while a source answers"
        )
    fig = go.Figure()
    if buckets:
        times = [b["timestamp"] for b in buckets]
        highs = [(b["timestamp"], b["high"]) for b in buckets]
        lows = [(b["timestamp"], b["low"]) for b in buckets]
        fig.add_trace(_line(highs, line={"width": 0}, hoverinfo="skip", showlegend=False))
        fig.add_trace(_line(lows, f"{interval} high/low", line={"width": 0}, fill="tonexty",
                            fillcolor="rgba(99,102,241,0.15)"))
        fig.add_trace(
            go.Scatter(
                x=times,
                y=[b["close"] for b in buckets],
                mode="lines+markers",
                line={"color": ACCENT, "width": 2},
                marker={"size": 4},
                name=f"stored {interval} close",
            )
        )
    if ticks:
        fig.add_trace(_line(ticks, "live ticks (memory)", line={"color": "#0ea5e9", "width": 1.5}))
    return _layout(fig, height=360, title=f"{symbol} / USD · source: {source}", hovermode="x unified")


def fear_greed_gauge(value: int | None, classification: str | None, note: str) -> go.Figure:
    """Draw the Fear & Greed gauge, or an empty gauge that says why there is no value."""
    lines = textwrap.wrap(note, 40) or [""]
    note = "<br>".join(lines[:3])
    fig = go.Figure(
        go.Indicator(
            mode="gauge+number" if value is not None else "gauge",
            value=value if value is not None else 0,
            number={"suffix": "", "font": {"size": 44}},
            title={
                "text": f"<b>{classification or 'no reading'}</b><br>"
                f"<span style='font-size:11px'>{note}</span>",
                "font": {"size": 15},
            },
            gauge={
                "axis": {"range": [0, 100], "tickvals": [0, 25, 50, 75, 100]},
                "bar": {"color": "#1e293b" if value is not None else "rgba(0,0,0,0)", "thickness": 0.25},
                "steps": [{"range": [lo, hi], "color": colour} for lo, hi, colour in FG_BANDS],
            },
        )
    )
    _layout(fig, height=250 + 14 * min(len(lines), 3))
    fig.update_layout(margin={"l": 30, "r": 30, "t": 52 + 14 * min(len(lines), 3), "b": 10})
    return fig


def fear_greed_history(points: Sequence[dict[str, Any]]) -> go.Figure:
    """Draw stored Fear & Greed readings over time on the coloured bands."""
    if not points:
        return empty_figure("No Fear & Greed readings stored yet")
    fig = go.Figure()
    for lo, hi, colour in FG_BANDS:
        fig.add_hrect(y0=lo, y1=hi, fillcolor=colour, opacity=0.12, line_width=0)
    fig.add_trace(
        go.Scatter(
            x=[p["timestamp"] for p in points],
            y=[p["value"] for p in points],
            mode="lines+markers",
            line={"color": "#1e293b", "width": 2},
            text=[p["classification"] for p in points],
            name="Fear & Greed",
        )
    )
    fig.update_yaxes(range=[0, 100])
    return _layout(fig, height=280, title="Fear & Greed history")


def sentiment_trend(
    news: Sequence[tuple[str, float]], rolling: Sequence[tuple[str, float]], mood: Sequence[tuple[str, float]]
) -> go.Figure:
    """Draw scored news (dots), their rolling mean, and the market mood's signed confidence."""
    if not news and not mood:
        return empty_figure("No scored news or market mood yet")
    fig = go.Figure()
    fig.add_hline(y=0, line={"color": MUTED, "width": 1, "dash": "dot"})
    if news:
        fig.add_trace(
            go.Scatter(
                x=[t for t, _ in news],
                y=[s for _, s in news],
                mode="markers",
                marker={
                    "size": 6,
                    "color": [s for _, s in news],
                    "colorscale": [[0, DOWN], [0.5, MUTED], [1, UP]],
                    "cmin": -1,
                    "cmax": 1,
                },
                name="news score",
            )
        )
    if rolling:
        fig.add_trace(_line(rolling, "rolling mean (10 items)", line={"color": ACCENT, "width": 2}))
    if mood:
        fig.add_trace(_line(mood, "market mood (± confidence)", line={"color": "#f59e0b", "width": 2, "dash": "dash"}))
    fig.update_yaxes(range=[-1.05, 1.05], title="bearish ← score → bullish")
    return _layout(fig, height=320, title="Sentiment trend")


def requests_chart(points: Sequence[tuple[str, int, int]]) -> go.Figure:
    """Draw requests in the last minute and hour, sampled from each `system_status`."""
    if not points:
        return empty_figure("No system_status received yet")
    fig = go.Figure()
    fig.add_trace(_line([(t, m) for t, m, _ in points], "per minute", line={"color": ACCENT, "width": 2}))
    hour_line = {"color": "#0ea5e9", "width": 2, "dash": "dot"}
    fig.add_trace(_line([(t, h) for t, _, h in points], "per hour", line=hour_line, yaxis="y2"))
    return _layout(
        fig,
        height=300,
        title="Requests (HTTP + WebSocket)",
        yaxis={"title": "last minute"},
        yaxis2={"title": "last hour", "overlaying": "y", "side": "right", "showgrid": False},
    )


def playground_bars(rows: Sequence[tuple[str, dict[str, float]]]) -> go.Figure:
    """Draw each model's probabilities (bearish/neutral/bullish) side by side, the ensemble first."""
    if not rows:
        return empty_figure("No scores yet: type a text and press Score", height=300)
    fig = go.Figure()
    names = [name for name, _ in rows]
    for label, colour in LABEL_COLOURS.items():
        fig.add_trace(
            go.Bar(
                x=names,
                y=[probs.get(label, 0.0) for _, probs in rows],
                name=label,
                marker_color=colour,
                text=[f"{probs.get(label, 0.0):.2f}" for _, probs in rows],
                textposition="outside",
            )
        )
    fig.update_yaxes(range=[0, 1.1], title="probability")
    return _layout(fig, height=340, barmode="group", title="Probabilities per model")
