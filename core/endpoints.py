"""The five WebSocket endpoints' paths, spelled once for the server: its routes and the AsyncAPI document
read them from here. The Python client (clients/python/) installs without the server and keeps its own
copy, which tests/test_client_package.py checks against this one."""

from __future__ import annotations

__all__ = ["MARKET_PATH", "MODELS_PATH", "NEWS_PATH", "SENTIMENT_PATH", "STATUS_PATH", "STREAM_PATHS"]

STATUS_PATH = "/api/monitoring/ws"
MARKET_PATH = "/ws/market_data"
NEWS_PATH = "/ws/news"
SENTIMENT_PATH = "/ws/sentiment"
MODELS_PATH = "/ws/huggingface"

# By the stream names the client's command line takes (`crypto-hub-client market`).
STREAM_PATHS = {
    "status": STATUS_PATH,
    "market": MARKET_PATH,
    "news": NEWS_PATH,
    "sentiment": SENTIMENT_PATH,
    "models": MODELS_PATH,
}
