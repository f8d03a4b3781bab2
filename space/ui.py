"""The Gradio UI mounted at `/`: six tabs fed by bus snapshots and the store, refreshed by timers.

Nothing here calls an upstream or a model: the views read the bus and the store, and the playground
goes through the inference service, each handed in by `ScreenParts` (space/parts.py). Every handler
runs with `concurrency_limit=None` so visitors never queue behind each other, and timers stay out of
the public API. Each tab has its own timer that runs only while the tab is open; renders are shared
between visitors (space/cache.py).

The one public endpoint, the playground's `score_text`, is bounded where it costs: the caller's
budget (`ClientBudgets`, shared with REST) and the anonymous scoring lane (`ScoringLane`, shared
with `POST /api/sentiment`), so Gradio's own queue only holds events about to start; it is bounded
too (`UI_QUEUE_MAX`), and its direct-call routes (`/gradio_api/run/...`) are closed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import gradio as gr

from core.token_bucket import ClientAccount
from space import charts, feeds, market_view, models_admin, models_view, news_view, sentiment_view, system_view
from space.api_view import API_JS, api_html
from space.cache import Memo
from space.parts import ScreenParts
from space.playground import playground_status, score_text
from space.routes import STATIC_PREFIX

__all__ = ["SCORE_API_NAME", "build_ui", "scoring_events"]

SCORE_API_NAME = "score_text"

PULSE_S = 1.0  # price table, banner and header
TAB_REFRESH_S = {"market": 5.0, "news": 2.0, "sentiment": 5.0, "models": 3.0, "system": 3.0}

# Every timer, load and tab event: no queueing between visitors, no public API endpoint, no spinner.
QUIET: dict[str, Any] = {"api_visibility": "private", "concurrency_limit": None, "show_progress": "hidden"}

TITLE = """<div class="hub-title"><h1>Crypto Market Hub</h1>
<p>Live prices, scored news, market sentiment and model health, pushed over WebSockets.
<a href="/live" target="_blank">/live</a> streams straight from the API.</p></div>"""


def _html(value: str = "", js_on_load: str | None = None, **kwargs: Any) -> gr.HTML:
    return gr.HTML(value, js_on_load=js_on_load, elem_classes=["hub"], **kwargs)


def build_ui(parts: ScreenParts) -> gr.Blocks:
    """Build the Blocks app on `parts`; the playground pays from `parts.budgets` and waits in `parts.lane`."""
    bus, inference = parts.bus, parts.inference
    symbols = list(parts.symbols)
    table = market_view.MarketTable()

    demo: gr.Blocks
    with gr.Blocks(title="Crypto Market Hub", analytics_enabled=False) as demo:
        # The stylesheet travels in a component's `head`: mount_gradio_app() resets Blocks-level css.
        _html(TITLE, head=f'<link rel="stylesheet" href="{STATIC_PREFIX}/ui.css">', elem_id="hub-title")
        pills = _html(elem_id="hub-pills")
        banner = _html(elem_id="demo-banner")
        with gr.Tabs(selected="market"):
            with gr.Tab("Market", id="market", elem_id="tab-market") as tab_market:
                with gr.Row(equal_height=False):
                    with gr.Column(scale=3):
                        prices = _html(elem_id="market-prices")
                    with gr.Column(scale=1, min_width=260):
                        gauge = gr.Plot(label="Fear & Greed", elem_id="market-gauge")
                        summary = _html(elem_id="market-summary-box")
                with gr.Row():
                    symbol = gr.Dropdown(symbols, value=symbols[0], label="Symbol", scale=1)
                    interval = gr.Radio(["1m", "1h", "1d"], value="1m", label="Bucket", scale=2)
                chart = gr.Plot(label="Price history", elem_id="price-chart")
            with gr.Tab("News", id="news", elem_id="tab-news") as tab_news:
                with gr.Row():
                    keyword = gr.Textbox(label="Keyword", placeholder="bitcoin, etf, hack…", scale=3)
                    source = gr.Dropdown(
                        [news_view.ALL_SOURCES], value=news_view.ALL_SOURCES, label="Source", scale=1
                    )
                news = _html(elem_id="news-list")
            with gr.Tab("Sentiment", id="sentiment", elem_id="tab-sentiment") as tab_sentiment:
                with gr.Row(equal_height=False):
                    with gr.Column(scale=1, min_width=260):
                        gauge2 = gr.Plot(label="Fear & Greed", elem_id="sentiment-gauge")
                    with gr.Column(scale=2):
                        mood = _html(elem_id="sentiment-mood")
                        social = _html(elem_id="sentiment-social")
                with gr.Row():
                    fg_history = gr.Plot(label="Fear & Greed history", elem_id="fg-history")
                    trend = gr.Plot(label="Sentiment trend", elem_id="sentiment-trend")
            with gr.Tab("Models", id="models", elem_id="tab-models") as tab_models:
                models = _html(elem_id="models-status")
                with gr.Accordion("Operator: load or unload a model", open=False, elem_id="models-operator"):
                    with gr.Row():
                        admin_token = gr.Textbox(
                            label="Admin token", type="password", scale=3, elem_id="models-admin-token"
                        )
                        unlock = gr.Button("Unlock", scale=1, elem_id="models-admin-unlock")
                    admin_note = _html(elem_id="models-admin-note")
                    # Shown only once the server accepted the token; each action checks it again.
                    with gr.Row(visible=False, elem_id="models-admin") as admin_row:
                        admin_model = gr.Dropdown(
                            inference.model_ids if inference is not None else [],
                            label="Model", scale=3, elem_id="models-admin-model",
                        )
                        load_button = gr.Button("Load", scale=1, elem_id="models-admin-load")
                        unload_button = gr.Button("Unload", scale=1, elem_id="models-admin-unload")
                gr.Markdown(
                    "### Playground\nType a headline or a post: every loaded model scores it, "
                    "next to the ensemble the news pipeline uses."
                )
                pg_status = _html(elem_id="playground-status-line")
                with gr.Row():
                    text = gr.Textbox(
                        label="Text",
                        lines=2,
                        scale=4,
                        elem_id="playground-text",
                        placeholder="Bitcoin ETF inflows hit a record as miners hold",
                    )
                    with gr.Column(scale=1, min_width=180):
                        domain = gr.Radio(["news", "social"], value="news", label="Kind of text")
                        score = gr.Button("Score", variant="primary", elem_id="playground-score")
                with gr.Row(equal_height=False):
                    bars = gr.Plot(
                        charts.playground_bars([]), label="Probabilities", elem_id="playground-bars"
                    )
                    results = _html(elem_id="playground-out")
                gr.Markdown("### Evaluation")
                evaluation = _html(elem_id="evaluation")
            with gr.Tab("System", id="system", elem_id="tab-system") as tab_system:
                overview = _html(elem_id="system-overview")
                requests = gr.Plot(label="Requests", elem_id="requests-chart")
                sources = _html(elem_id="system-sources")
            with gr.Tab("API", id="api", elem_id="tab-api") as tab_api:
                _html(api_html(), js_on_load=API_JS, elem_id="api-tab")

        # ------------------------------------------------------------ handlers

        # Handlers are coroutines so they run on the event loop, not in Gradio's 40-thread pool; each
        # renders once per change of what it shows (`shared`), whatever the number of visitors.
        shared: Memo[tuple[Any, ...]] = Memo(size=16)

        def seqs(*topics: str) -> tuple[int, ...]:
            return tuple(feeds.last_seq(bus, topic) for topic in topics)

        async def pulse() -> tuple[Any, ...]:
            return shared.get(
                ("pulse", *seqs("market", "system", "sentiment")),
                lambda: (
                    market_view.header_html(parts),
                    market_view.banner_html(parts),
                    table.html(parts),
                    market_view.summary_html(parts),
                ),
            )

        def gauge_figure() -> Any:
            return shared.get(
                ("gauge", *seqs("sentiment")), lambda: (sentiment_view.fear_greed_figure(bus),)
            )[0]

        async def market_charts(sym: str, bucket: str) -> tuple[Any, Any]:
            return gauge_figure(), await market_view.price_figure(parts, sym, bucket)

        async def news_feed(word: str, src: str, known: list[str]) -> tuple[str, Any, list[str]]:
            choices = await news_view.source_choices(parts)
            update = gr.Dropdown(choices=choices) if choices != known else gr.skip()
            return await news_view.news_html(parts, word, src), update, choices

        async def sentiment_tab() -> tuple[Any, ...]:
            history, trend_fig = await sentiment_view.trend_figures(parts)
            cards = shared.get(
                ("sentiment", *seqs("sentiment")),
                lambda: (sentiment_view.mood_html(bus), sentiment_view.social_html(bus)),
            )
            return (gauge_figure(), *cards, history, trend_fig)

        async def models_tab() -> tuple[Any, ...]:
            return shared.get(
                ("models", *seqs("models"), int(time.monotonic() // 30)),
                lambda: (
                    models_view.models_html(parts),
                    playground_status(inference),
                    models_view.evaluation_html(parts),
                ),
            )

        async def system_tab() -> tuple[Any, ...]:
            return shared.get(
                ("system", *seqs("system")),
                lambda: (
                    system_view.overview_html(parts),
                    system_view.requests_figure(bus),
                    system_view.sources_html(bus),
                ),
            )

        async def playground(body: str, kind: str, request: gr.Request) -> tuple[Any, str]:
            budgets = parts.budgets
            account = ClientAccount(budgets, _client_of(request)) if budgets is not None else None
            return await score_text(inference, body, kind, account=account, lane=parts.lane)

        known_sources = gr.State([news_view.ALL_SOURCES])
        refreshers: dict[str, tuple[Callable[..., Any], list[Any], list[Any]]] = {
            "market": (market_charts, [symbol, interval], [gauge, chart]),
            "news": (news_feed, [keyword, source, known_sources], [news, source, known_sources]),
            "sentiment": (sentiment_tab, [], [gauge2, mood, social, fg_history, trend]),
            "models": (models_tab, [], [models, pg_status, evaluation]),
            "system": (system_tab, [], [overview, requests, sources]),
        }

        # ------------------------------------------------------------ wiring

        pulse_timer = gr.Timer(PULSE_S)
        pulse_outputs = [pills, banner, prices, summary]
        pulse_timer.tick(pulse, outputs=pulse_outputs, **QUIET)
        demo.load(pulse, outputs=pulse_outputs, **QUIET)
        timers: dict[str, gr.Timer] = {}
        for name, (fn, inputs, outputs) in refreshers.items():
            timers[name] = gr.Timer(TAB_REFRESH_S[name], active=name == "market")
            timers[name].tick(fn, inputs=inputs, outputs=outputs, **QUIET)
            demo.load(fn, inputs=inputs, outputs=outputs, **QUIET)

        tab_blocks = {
            "market": tab_market,
            "news": tab_news,
            "sentiment": tab_sentiment,
            "models": tab_models,
            "system": tab_system,
            "api": tab_api,
        }
        for name, block in tab_blocks.items():
            _wire_tab(block, name, timers, refreshers.get(name))

        symbol.change(market_charts, inputs=[symbol, interval], outputs=[gauge, chart], **QUIET)
        interval.change(market_charts, inputs=[symbol, interval], outputs=[gauge, chart], **QUIET)
        for control in (keyword, source):
            control.change(
                news_feed,
                inputs=[keyword, source, known_sources],
                outputs=[news, source, known_sources],
                trigger_mode="always_last",
                **QUIET,
            )
        score.click(
            playground,
            inputs=[text, domain],
            outputs=[bars, results],
            api_name=SCORE_API_NAME,
            concurrency_limit=None,
            show_progress="minimal",
        )
        text.submit(
            playground,
            inputs=[text, domain],
            outputs=[bars, results],
            api_visibility="private",
            concurrency_limit=None,
            show_progress="minimal",
        )

        async def unlock_admin(token: str) -> tuple[Any, str]:
            shown, note = models_admin.unlock(parts, token)
            return gr.Row(visible=shown), note

        async def load_model(token: str, model_id: str | None) -> str:
            return await models_admin.change_model(parts, token, model_id, load=True)

        async def unload_model(token: str, model_id: str | None) -> str:
            return await models_admin.change_model(parts, token, model_id, load=False)

        unlock.click(unlock_admin, inputs=[admin_token], outputs=[admin_row, admin_note], **QUIET)
        admin_token.submit(unlock_admin, inputs=[admin_token], outputs=[admin_row, admin_note], **QUIET)
        load_button.click(load_model, inputs=[admin_token, admin_model], outputs=[admin_note], **QUIET)
        unload_button.click(unload_model, inputs=[admin_token, admin_model], outputs=[admin_note], **QUIET)
    # The lane, not Gradio, bounds the playground (it refuses at once where Gradio would queue), so
    # events only wait here for the loop to start them; `max_size` caps a flood of joins, and
    # `api_open=False` closes the routes that would run an event without the queue.
    demo.queue(default_concurrency_limit=None, max_size=parts.ui_queue_max, api_open=False)
    return demo


def scoring_events(demo: gr.Blocks) -> tuple[frozenset[int], frozenset[str]]:
    """The ids (`fn_index`) and API names of the events that score text: the playground's button and box."""
    scoring = {fn_id: block_fn.api_name for fn_id, block_fn in demo.fns.items()
               if getattr(block_fn.fn, "__name__", "") == "playground"}
    return frozenset(scoring), frozenset(name for name in scoring.values() if name)


def _client_of(request: gr.Request | None) -> str:
    """The caller's address, as the REST guard keys it (uvicorn's proxy headers applied)."""
    client = getattr(request, "client", None)
    return str(getattr(client, "host", None) or "unknown")


def _wire_tab(
    block: gr.Tab,
    name: str,
    timers: dict[str, gr.Timer],
    refresher: tuple[Callable[..., Any], list[Any], list[Any]] | None,
) -> None:
    """Run only the opened tab's timer, and refresh the tab at once when it opens."""
    ordered = list(timers)

    def activate() -> list[gr.Timer]:
        return [gr.Timer(active=other == name) for other in ordered]

    event = block.select(activate, outputs=[timers[t] for t in ordered], **QUIET)
    if refresher is not None:
        fn, inputs, outputs = refresher
        event.then(fn, inputs=inputs, outputs=outputs, **QUIET)
