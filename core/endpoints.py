"""The five WebSocket endpoints' paths, spelled once: the server's routes, the Python client and the
AsyncAPI document read them from here."""

from __future__ import annotations

__all__ = ["MARKET_PATH", "MODELS_PATH", "NEWS_PATH", "SENTIMENT_PATH", "STATUS_PATH", "STREAM_PATHS"]

STATUS_PATH = "/api/monitoring/ws"
MARKET_PATH = "/ws/market_data"
NEWS_PATH = "/ws/news"
SENTIMENT_PATH = "/ws/sentiment"
MODELS_PATH = "/ws/huggingface"

# By the stream names the client's command line takes (`python -m ws market`).
STREAM_PATHS = {
    "status": STATUS_PATH,
    "market": MARKET_PATH,
    "news": NEWS_PATH,
    "sentiment": SENTIMENT_PATH,
    "models": MODELS_PATH,
}
