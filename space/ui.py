"""The Gradio UI. It reads bus snapshots and the store through the runtime; never an upstream or a model."""

from __future__ import annotations

import json
from typing import Any

import gradio as gr
import pandas as pd

__all__ = ["build_ui"]


def _market_table(runtime: Any) -> pd.DataFrame:
    rows = []
    for env in runtime.bus.snapshot("market"):
        if env.key is None:
            continue
        message = json.loads(env.text)
        data = message["data"]
        rows.append({"symbol": data["symbol"], "price": data["price"], "change_24h %": data["change_24h"],
                     "change_7d %": data["change_7d"], "volume_24h": data["volume_24h"],
                     "market_cap": data["market_cap"], "source": message["source"], "as of": data["timestamp"]})
    return pd.DataFrame(rows)


def _banner(runtime: Any) -> str:
    if runtime.market.simulated:
        return ("⚠️ **Simulated data**: prices come from the labelled simulator (`source: simulator`) "
                "because no live market provider is answering.")
    return ""


def build_ui(runtime: Any) -> gr.Blocks:
    """Build the Blocks app bound to one runtime."""
    with gr.Blocks(title="Crypto Market Hub", analytics_enabled=False) as demo:
        gr.Markdown("# Crypto Market Hub\nLive prices, scored news and honest monitoring over WebSockets.")
        banner = gr.Markdown(_banner(runtime), elem_id="demo-banner")
        table = gr.Dataframe(_market_table(runtime), label="Market", elem_id="market-table")
        timer = gr.Timer(2.0)
        timer.tick(lambda: (_banner(runtime), _market_table(runtime)), outputs=[banner, table],
                   api_visibility="private", concurrency_limit=None, show_progress="hidden")
    return demo
