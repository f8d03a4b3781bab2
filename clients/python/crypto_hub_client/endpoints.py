"""The hub's five WebSocket endpoint paths, by the stream names the command line takes.

The client carries its own copy so that it installs without the server; the server's
tests/test_client_package.py checks it against the server's core/endpoints.py.
"""

from __future__ import annotations

__all__ = ["MARKET_PATH", "NEWS_PATH", "STREAM_PATHS"]

STREAM_PATHS = {
    "status": "/api/monitoring/ws",
    "market": "/ws/market_data",
    "news": "/ws/news",
    "sentiment": "/ws/sentiment",
    "models": "/ws/huggingface",
}
MARKET_PATH = STREAM_PATHS["market"]
NEWS_PATH = STREAM_PATHS["news"]
