"""The UI's views rendered from the parts the app composes (nothing started): cheap, no browser, no server."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from compose import compose, screen_parts
from core.clock import utc_now
from core.config import Settings
from core.records import NewsItem, SentimentResult
from space import feeds, market_view, models_view, news_view, sentiment_view, system_view
from space.cache import Memo
from space.fmt import fmt_age, fmt_big, fmt_pct, fmt_price, signed_class
from space.parts import ScreenParts
from space.playground import playground_status, score_text
from space.ui import build_ui

SYMBOLS = ("BTC", "ETH", "SHIB")


@pytest.fixture
def parts(tmp_path: Path) -> Any:
    components = compose(Settings(data_dir=tmp_path, symbols=SYMBOLS, data_mode="demo", log_file=None,
                                  enable_inference=False))
    yield components
    components.store.close()


@pytest.fixture
def runtime(parts: Any) -> Any:
    return parts.runtime


def screens(parts: Any) -> ScreenParts:
    """What the app builds the UI from, with the models the runtime has now (tests swap in a stand-in)."""
    return screen_parts(replace(parts, inference=parts.runtime.inference))


def item(title: str, **fields: Any) -> NewsItem:
    base = {
        "description": "",
        "url": f"https://news.example/{abs(hash(title))}",
        "source": "CoinDesk",
        "published_at": utc_now(),
    }
    return NewsItem(title=title, **{**base, **fields})


class Scorer:
    """The inference service's interface, with fixed answers; `broken` models raise."""

    def __init__(self, models: list[dict[str, Any]], broken: frozenset[str] = frozenset()) -> None:
        self.models, self.broken = models, broken

    def describe_models(self) -> list[dict[str, Any]]:
        return self.models

    async def score(
        self, texts: list[str], domain: str = "news", model: str | None = None
    ) -> list[SentimentResult]:
        if model in self.broken:
            raise RuntimeError("CUDA out of memory")
        probs = {"bearish": 0.2, "neutral": 0.2, "bullish": 0.6}
        return [SentimentResult("bullish", 0.4, 0.6, probs, model or "ensemble") for _ in texts]


def model(model_id: str, status: str = "available", **extra: Any) -> dict[str, Any]:
    return {
        "id": model_id,
        "status": status,
        "success_rate": 99.0,
        "avg_response_time": 20.0,
        "last_used": None,
        **extra,
    }


async def test_market_table_lists_every_symbol_with_source_and_age(runtime: Any, parts: Any) -> None:
    await runtime.market.tick_in_turns()
    html = market_view.MarketTable().html(screens(parts))
    for symbol in SYMBOLS:
        assert f'data-symbol="{symbol}"' in html
    assert html.count("simulator") == len(SYMBOLS) and "$0.0000" in html  # SHIB keeps its digits


async def test_market_table_marks_the_last_move(runtime: Any, parts: Any) -> None:
    table = market_view.MarketTable()
    await runtime.market.tick_in_turns()
    views = screens(parts)
    table.html(views)
    await runtime.market.tick_in_turns()
    assert "▲" in table.html(views) or "▼" in table.html(views)


async def test_banner_names_demo_mode(runtime: Any, parts: Any) -> None:
    await runtime.market.tick_in_turns()
    assert "DATA_MODE=demo" in market_view.banner_html(screens(parts))


async def test_banner_is_empty_in_live_mode(tmp_path: Path) -> None:
    live = compose(Settings(data_dir=tmp_path, symbols=SYMBOLS, data_mode="live", log_file=None,
                            enable_inference=False, enable_sources=False))
    await live.market.tick_in_turns()
    assert market_view.banner_html(screens(live)) == ""
    live.store.close()


async def test_news_escapes_titles_and_refuses_script_urls(runtime: Any, parts: Any) -> None:
    await runtime.news.ingest(
        [item("<img src=x onerror=alert(1)>", url="https://a.example/1", image_url="javascript:alert(1)")]
    )
    html = await news_view.news_html(screens(parts), None, None)
    assert "<img src=x" not in html and "&lt;img src=x" in html
    assert "javascript:" not in html


async def test_news_filters_by_keyword_and_source(runtime: Any, parts: Any) -> None:
    await runtime.news.ingest([item("Bitcoin rallies"), item("Ether slips", source="Decrypt")])
    views = screens(parts)
    assert "Ether slips" not in await news_view.news_html(views, "bitcoin", None)
    only_decrypt = await news_view.news_html(views, None, "Decrypt")
    assert "Ether slips" in only_decrypt and "Bitcoin rallies" not in only_decrypt
    assert await news_view.source_choices(views) == [news_view.ALL_SOURCES, "CoinDesk", "Decrypt"]


async def test_news_shows_the_streamed_items_when_the_database_fails(runtime: Any, parts: Any) -> None:
    await runtime.news.ingest([item("Streamed while the store breaks")])
    with runtime.store.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE news")  # every stored-news query fails from now on
    # A filter no other test renders (memo key).
    html = await news_view.news_html(screens(parts), "streamed", None)
    assert "Streamed while the store breaks" in html and "Database error" in html


def test_sentiment_badge_shows_score_or_unscored() -> None:
    assert "positive +0.85" in news_view.sentiment_badge("positive", 0.85, "cryptobert")
    assert "unscored" in news_view.sentiment_badge(None, None, None)


async def test_sentiment_views_show_reasons_when_values_are_missing(runtime: Any, parts: Any) -> None:
    await runtime.publish_sentiment()
    reasons = json.loads(runtime.bus.latest("sentiment").text)["data"]
    assert reasons["social"]["twitter"]["reason"] in sentiment_view.social_html(runtime.bus)
    assert "no verdict" in sentiment_view.mood_html(runtime.bus)
    history, trend = await sentiment_view.trend_figures(screens(parts))
    assert history.layout.annotations and trend.layout.annotations  # "nothing yet" messages


async def test_sentiment_trend_plots_scored_news(runtime: Any, parts: Any) -> None:
    scored = [
        replace(
            item(f"n{i}"),
            sentiment="positive",
            sentiment_score=0.1 * i,
            published_at=utc_now() - timedelta(minutes=i),
        )
        for i in range(5)
    ]
    for news_item in scored:
        await runtime.news.ingest([news_item])
    _, trend = await sentiment_view.trend_figures(screens(parts))
    assert [t.name for t in trend.data] == ["news score", "rolling mean (10 items)"]


def test_models_view_says_inference_is_off(runtime: Any, parts: Any) -> None:
    assert "not running" in models_view.models_html(screens(parts))
    assert "Inference is off" in playground_status(runtime.inference)


async def test_models_view_lists_failures_with_their_reason(runtime: Any, parts: Any) -> None:
    runtime.inference = Scorer([model("a"), model("b", "failed", error="not in the local cache")])
    await runtime.publish_models_status()
    html = models_view.models_html(screens(parts))
    assert 'data-model="b"' in html and "not in the local cache" in html and "1 failed" in html


async def test_models_view_shows_measured_accuracy_and_lock_warning(runtime: Any, parts: Any) -> None:
    numbers = {"n": 300, "accuracy": 0.71, "accuracy_ci95": [0.66, 0.76], "macro_f1": 0.64,
               "macro_f1_ci95": [0.58, 0.7], "ece": 0.05}
    evaluation = {"status": "done", "domains": {"news": numbers}}
    lock = {"state": "unlocked", "warning": "not in the model lock: loads whatever the hub's main is"}
    runtime.inference = Scorer([model("a", evaluation=evaluation, lock=lock)])
    await runtime.publish_models_status()
    html = models_view.models_html(screens(parts))
    assert "news 0.71 (0.66-0.76)" in html and "not in the model lock" in html


async def test_models_view_labels_hub_models_pinned_or_unpinned(runtime: Any, parts: Any) -> None:
    unlocked = {"state": "unlocked", "revision": None, "warning": "unpinned: loads the hub's main"}
    locked = {"state": "locked", "revision": "ab" * 20, "files": 4, "warning": None}
    runtime.inference = Scorer([model("a", lock=unlocked), model("b", lock=locked), model("c")])
    await runtime.publish_models_status()
    rows = models_view.models_html(screens(parts)).split("<tr data-model=")[1:]
    assert ">unpinned<" in rows[0] and f">pinned {'ab' * 6}<" in rows[1]
    assert "pinned" not in rows[2]


async def test_models_view_says_which_sample_rows_a_model_was_not_scored_on(runtime: Any, parts: Any) -> None:
    numbers = {"n": 300, "accuracy": 0.71, "accuracy_ci95": [0.66, 0.76], "macro_f1": 0.64,
               "macro_f1_ci95": [0.58, 0.7], "ece": 0.05}
    partly = {"rows": 100, "of": 700, "reason": "fine-tuned on FiQA", "training_data_known": True}
    unknown = {"rows": 0, "of": 700, "reason": "training data unknown: unpublished", "training_data_known": False}
    every = {"status": "excluded", "error": "not measured: all 700 rows of the sample are excluded"}
    runtime.inference = Scorer(
        [
            model("a", evaluation={"status": "done", "domains": {"news": numbers}, "excluded": partly}),
            model("b", evaluation={"status": "done", "domains": {"news": numbers}, "excluded": unknown}),
            model("c", evaluation=every),
        ]
    )
    await runtime.publish_models_status()
    rows = models_view.models_html(screens(parts)).split("<tr data-model=")[1:]
    assert "100 of 700 rows left out" in rows[0] and "fine-tuned on FiQA" in rows[0]
    assert "training data unknown" in rows[1] and "all 700 rows of the sample are excluded" in rows[2]


async def test_playground_refuses_clearly_without_inference(runtime: Any) -> None:
    figure, html = await score_text(runtime.inference, "BTC to the moon", "news")
    assert "Inference is off" in html and not figure.data


async def test_playground_scores_every_available_model_and_reports_failures(runtime: Any) -> None:
    runtime.inference = Scorer([model("a"), model("b"), model("c", "loading")], broken=frozenset({"b"}))
    figure, html = await score_text(runtime.inference, "BTC to the moon", "social")
    assert [bar.name for bar in figure.data] == ["bearish", "neutral", "bullish"]
    assert list(figure.data[2].x) == ["ensemble", "a"]
    assert "CUDA out of memory" in html and 'data-model="c"' not in html


async def test_system_view_groups_sources_and_plots_requests(runtime: Any, parts: Any) -> None:
    await runtime.publish_system_status()
    await runtime.publish_system_status()
    assert 'data-category="market_data"' in system_view.sources_html(runtime.bus)
    assert "online" in system_view.overview_html(screens(parts))
    assert len(system_view.requests_figure(runtime.bus).data[0].x) == 2


async def test_feeds_reads_journal_envelopes_without_models(runtime: Any) -> None:
    await runtime.market.tick_in_turns()
    rows, error = feeds.prices(runtime.bus, runtime.server.symbols)
    assert [r["data"]["symbol"] for r in rows] == list(SYMBOLS) and error is None


def test_ui_handlers_are_private_and_never_queue(parts: Any) -> None:
    demo = build_ui(screens(parts))
    public = {fn.api_name for fn in demo.fns.values() if fn.api_visibility == "public"}
    assert public == {"score_text"}
    assert all(fn.concurrency_limit is None for fn in demo.fns.values())


def test_memo_recomputes_only_on_new_key_or_expiry() -> None:
    now = [0.0]
    memo: Memo[int] = Memo(size=2, ttl_s=1.0, clock=lambda: now[0])
    assert memo.get("a", lambda: 1) == 1 and memo.get("a", lambda: 2) == 1
    now[0] = 2.0
    assert memo.get("a", lambda: 3) == 3
    memo.get("b", lambda: 4)
    memo.get("c", lambda: 5)
    assert memo.get("a", lambda: 6) == 6  # evicted: size 2


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (90123.456, "$90,123.46"),
        (2.5, "$2.5000"),
        (0.1496, "$0.1496"),
        (0.0000085123, "$0.000008512"),
        (None, "—"),
    ],
)
def test_fmt_price_keeps_significant_digits(value: float | None, text: str) -> None:
    assert fmt_price(value) == text


def test_formatters() -> None:
    assert fmt_big(1.8e12) == "$1.80T" and fmt_pct(-1.2) == "-1.20%" and signed_class(0.0) == "flat"
    assert fmt_age(3725) == "1h 02m" and fmt_age(None) == "—"


def test_evaluation_report_in_data_dir_is_shown(parts: Any, tmp_path: Path) -> None:
    report = {
        "kk08/CryptoBERT": {"n": 300, "accuracy": 0.71, "macro_f1": 0.64, "confusion": [[1]]},
        "ProsusAI/finbert": {"status": "failed", "error": "not cached"},
        "ensemble": {"n": 300, "accuracy": 0.74, "macro_f1": 0.69, "model": "ensemble(2)"},
    }
    (tmp_path / "evaluation.json").write_text(json.dumps(report))
    html = models_view.evaluation_html(screens(parts))
    assert "0.710" in html and "not cached" in html and "ensemble(2)" in html and "confusion" not in html


async def test_playground_asks_named_models_not_to_fall_back(runtime: Any) -> None:
    seen: list[dict[str, Any]] = []

    class NoFallback(Scorer):
        async def score(
            self, texts: list[str], domain: str = "news", model: str | None = None, *, fallback: bool = True
        ) -> list[SentimentResult]:
            seen.append({"model": model, "fallback": fallback})
            return await super().score(texts, domain, model)

    runtime.inference = NoFallback([model("a")])
    await score_text(runtime.inference, "ETH gas fees fall", "news")
    assert {"model": "a", "fallback": False} in seen and {"model": None, "fallback": True} in seen


async def test_system_view_shows_ephemeral_storage_and_the_single_address_warning(tmp_path: Path) -> None:
    components = compose(Settings(data_dir=tmp_path, space_id="owner/hub", space_storage_dir=tmp_path / "absent",
                                  enable_inference=False, enable_sources=False, data_mode="demo", log_file=None))
    runtime = components.runtime
    runtime.client_watch.check_after = 2
    for _ in range(2):
        runtime.client_watch.observe("10.16.3.80", forwarded_ignored=False)
    try:
        await runtime.publish_system_status()
        html = system_view.overview_html(screens(components))
    finally:
        runtime.store.close()
    assert 'id="storage-reason"' in html and "wiped when the Space restarts" in html
    assert 'id="clients-warning"' in html and "all 2 requests and sockets so far came from 10.16.3.80" in html
