"""A Python client of the crypto market hub's five WebSocket streams, installable without the server.

    async with HubClient.for_stream("news", keywords=["bitcoin"]) as client:
        async for message in client:
            print(message["type"], message.get("seq"))

`crypto-hub-client STREAM` (or `python -m crypto_hub_client STREAM`) prints a stream as JSON lines.
"""

from __future__ import annotations

from crypto_hub_client.client import (
    DEFAULT_BASE_URL,
    ClientClosed,
    ConnectionRejected,
    ConnectionState,
    HubClient,
    HubClientError,
    StateChange,
    stream_url,
)
from crypto_hub_client.endpoints import STREAM_PATHS
from crypto_hub_client.resume import Backoff, ClientStats

__all__ = [
    "DEFAULT_BASE_URL",
    "STREAM_PATHS",
    "Backoff",
    "ClientClosed",
    "ClientStats",
    "ConnectionRejected",
    "ConnectionState",
    "HubClient",
    "HubClientError",
    "StateChange",
    "stream_url",
]
