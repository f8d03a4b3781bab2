"""The AsyncAPI 3.0 document of the five WebSocket channels, generated from the models in core/protocol.py.

Schemas come from pydantic's `model_json_schema` machinery (never written by hand), so the document
changes when a message model changes. Server messages are described as sent: every field, `null`
included, is always present (the bus encodes with `model_dump_json()`), so all of them are required.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, models_json_schema

from core import protocol as p
from core.endpoints import MARKET_PATH, MODELS_PATH, NEWS_PATH, SENTIMENT_PATH, STATUS_PATH
from core.version import VERSION
from space import asyncapi_examples as examples

__all__ = ["CHANNELS", "MESSAGES", "build_asyncapi"]

SCHEMA_REF = "#/components/schemas/{model}"


@dataclass(frozen=True)
class MessageSpec:
    """One message of the API: its model, direction, and what it is for."""

    name: str
    model: type[BaseModel]
    sent_by_server: bool
    summary: str
    example: BaseModel


@dataclass(frozen=True)
class ChannelSpec:
    """One endpoint: its path, the messages the server sends and the requests it takes."""

    id: str
    address: str
    title: str
    description: str
    sends: tuple[str, ...]
    receives: tuple[str, ...]


MESSAGES = (
    MessageSpec(
        "system_status",
        p.SystemStatusMessage,
        True,
        "Health of models, data sources and database, with request counts (every 5 s). "
        "Sections stand at the top level.",
        examples.SYSTEM_STATUS,
    ),
    MessageSpec(
        "price_update",
        p.PriceUpdateMessage,
        True,
        "Latest price of one subscribed symbol (every 1 s per symbol); `source` names the provider "
        '("simulator" in demo mode).',
        examples.PRICE_UPDATE,
    ),
    MessageSpec(
        "news",
        p.NewsMessage,
        True,
        "A news item with its sentiment, as soon as it is published.",
        examples.NEWS,
    ),
    MessageSpec(
        "sentiment_update",
        p.SentimentUpdateMessage,
        True,
        "Fear & Greed, social and overall market sentiment (every 60 s); null values carry a reason.",
        examples.SENTIMENT_UPDATE,
    ),
    MessageSpec(
        "models_status",
        p.ModelsStatusMessage,
        True,
        "Status, success rate and latency of every sentiment model (every 10 s).",
        examples.MODELS_STATUS,
    ),
    MessageSpec(
        "error",
        p.ErrorMessage,
        True,
        "A request could not be served, or a stream has a problem.",
        examples.ERROR,
    ),
    MessageSpec(
        "market_error",
        p.StreamErrorMessage,
        True,
        "A stream-wide problem of the market stream, e.g. CONNECTION_ERROR when every provider is lost; "
        "it carries seq/epoch like every market message.",
        examples.MARKET_ERROR,
    ),
    MessageSpec(
        "ack",
        p.AckMessage,
        True,
        "Confirms subscribe/unsubscribe/filter with the resulting state.",
        examples.ACK,
    ),
    MessageSpec("pong", p.PongMessage, True, "Answer to a ping.", examples.PONG),
    MessageSpec(
        "subscribe",
        p.SubscribeRequest,
        False,
        "Add symbols to this connection's price stream.",
        p.SubscribeRequest(action="subscribe", symbols=["BTC", "ETH", "SOL"]),
    ),
    MessageSpec(
        "unsubscribe",
        p.UnsubscribeRequest,
        False,
        "Remove symbols from this connection's stream.",
        p.UnsubscribeRequest(action="unsubscribe", symbols=["SOL"]),
    ),
    MessageSpec(
        "get_all",
        p.GetAllRequest,
        False,
        "Get the latest update of every tracked symbol at once.",
        p.GetAllRequest(action="get_all"),
    ),
    MessageSpec(
        "filter",
        p.FilterRequest,
        False,
        "Only receive news whose title or description contains one of the keywords (empty: all).",
        p.FilterRequest(action="filter", keywords=["bitcoin", "ethereum"]),
    ),
    MessageSpec(
        "ping", p.PingRequest, False, "Heartbeat; the server answers with pong.", p.PingRequest(type="ping")
    ),
)

_COMMON_SENDS = ("error", "pong")
CHANNELS = (
    ChannelSpec(
        "monitoring",
        STATUS_PATH,
        "System monitoring",
        "Receives a system_status at once on connect, then every 5 s.",
        ("system_status", *_COMMON_SENDS),
        ("ping",),
    ),
    ChannelSpec(
        "market_data",
        MARKET_PATH,
        "Market prices",
        "Send subscribe with symbols (or connect with ?symbols=BTC,ETH) to receive price_update per "
        "symbol every second; get_all answers at once with every tracked symbol.",
        ("price_update", "market_error", "ack", *_COMMON_SENDS),
        ("subscribe", "unsubscribe", "get_all", "ping"),
    ),
    ChannelSpec(
        "news",
        NEWS_PATH,
        "News",
        "Every news item as soon as it is published. Resume with ?since=<seq>&epoch=<epoch>: items after "
        "that seq are replayed, or a HISTORY_GAP error says some were lost (SEQ_AHEAD: the seq is ahead of "
        "the stream). A new client can ask for the "
        "latest items first with ?backlog=N (0 to MAX_NEWS_BACKLOG, default 100; since wins over backlog).",
        ("news", "ack", *_COMMON_SENDS),
        ("filter", "ping"),
    ),
    ChannelSpec(
        "sentiment",
        SENTIMENT_PATH,
        "Market sentiment",
        "The latest sentiment_update at once on connect, then every 60 s and within a moment of any input "
        "changing (Fear & Greed, news or social scores).",
        ("sentiment_update", *_COMMON_SENDS),
        ("ping",),
    ),
    ChannelSpec(
        "huggingface",
        MODELS_PATH,
        "Model status",
        "The latest models_status at once on connect, then every 10 s.",
        ("models_status", *_COMMON_SENDS),
        ("ping",),
    ),
)

_QUERY = {
    "type": "object",
    "properties": {
        "since": {"type": "integer", "description": "Resume after this seq (messages carry seq and epoch)."},
        "epoch": {
            "type": "string",
            "description": "The epoch of that seq; a different epoch replays the snapshot.",
        },
        "token": {
            "type": "string",
            "description": "API token, when the server sets API_TOKENS "
            "(or send Authorization: Bearer, or Sec-WebSocket-Protocol).",
        },
        "symbols": {
            "type": "string",
            "description": f"{MARKET_PATH} only: comma-separated symbols to subscribe "
            "(past MAX_SYMBOLS_PER_CONNECTION: an INVALID_SYMBOL error and nothing subscribed).",
        },
        "keywords": {
            "type": "string",
            "description": f"{NEWS_PATH} only: comma-separated keywords, applied before any replay "
            "(at most MAX_KEYWORDS).",
        },
        "sources": {
            "type": "string",
            "description": f"{NEWS_PATH} only: comma-separated source names, applied before any replay "
            "(at most MAX_SOURCES).",
        },
        "backlog": {
            "type": "integer",
            "minimum": 0,
            "maximum": 100,
            "description": f"{NEWS_PATH} only: send the latest N retained items that pass the filter, oldest first, "
            "on connect (maximum MAX_NEWS_BACKLOG, default 100; ignored with since).",
        },
    },
}


class _AllFieldsSent(GenerateJsonSchema):
    """Marks every serialised field required: the server always sends them, `null` included."""

    def field_is_required(self, field: Any, total: bool) -> bool:
        if self.mode == "serialization":
            return field.get("serialization_exclude_if") is None
        return super().field_is_required(field, total)


def _schemas() -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    inputs: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        (m.model, "serialization" if m.sent_by_server else "validation") for m in MESSAGES
    ]
    keys, definitions = models_json_schema(inputs, ref_template=SCHEMA_REF, schema_generator=_AllFieldsSent)
    refs = {m.name: keys[(m.model, mode)] for m, (_, mode) in zip(MESSAGES, inputs, strict=True)}
    return definitions.get("$defs", {}), refs


def _message(spec: MessageSpec, ref: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": spec.name,
        "title": spec.name.replace("_", " "),
        "summary": spec.summary,
        "contentType": "application/json",
        "payload": ref,
        "examples": [{"name": spec.name, "payload": spec.example.model_dump(mode="json")}],
        "x-direction": "server-to-client" if spec.sent_by_server else "client-to-server",
        "x-model": f"{spec.model.__module__}.{spec.model.__qualname__}",
    }


@cache
def build_asyncapi() -> dict[str, Any]:
    """Return the AsyncAPI 3.0 document of the WebSocket API (built once per process)."""
    schemas, refs = _schemas()
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for channel in CHANNELS:
        names = channel.sends + channel.receives
        channels[channel.id] = {
            "address": channel.address,
            "title": channel.title,
            "description": channel.description,
            "messages": {name: {"$ref": f"#/components/messages/{name}"} for name in names},
            "bindings": {"ws": {"method": "GET", "query": _QUERY, "bindingVersion": "0.1.0"}},
        }
        for action, group in (("send", channel.sends), ("receive", channel.receives)):
            operations[f"{action}_{channel.id}"] = {
                "action": action,
                "channel": {"$ref": f"#/channels/{channel.id}"},
                "summary": (
                    f"The server sends these on {channel.address}."
                    if action == "send"
                    else f"Clients send these to {channel.address}."
                ),
                "messages": [{"$ref": f"#/channels/{channel.id}/messages/{name}"} for name in group],
            }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Crypto Market Hub WebSocket API",
            "version": VERSION,
            "description": "Live crypto prices, scored news, market sentiment, model status and system "
            "health. Every server message is JSON; bus messages carry `seq` (per channel, increasing) and "
            "`epoch` for resuming with `?since=<seq>&epoch=<epoch>`. Close codes: "
            + ", ".join(f"{c.value} {c.name}" for c in p.CloseCode)
            + ".",
        },
        "defaultContentType": "application/json",
        "servers": {
            "space": {
                "host": "{host}",
                "protocol": "wss",
                "description": "The deployed Space (TLS).",
                "variables": {
                    "host": {
                        "default": "localhost:7860",
                        "description": "The Space's host, e.g. owner-space.hf.space",
                    }
                },
            },
            "local": {
                "host": "localhost:7860",
                "protocol": "ws",
                "description": "python app.py on a laptop.",
            },
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": {m.name: _message(m, refs[m.name]) for m in MESSAGES},
            "schemas": schemas,
        },
    }
