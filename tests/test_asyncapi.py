"""The AsyncAPI document: generated from core/protocol.py, complete, resolvable, and true to real messages."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel

from api.asyncapi import build_asyncapi_router
from compose import compose
from core import protocol
from core.asyncapi import CHANNELS, build_asyncapi
from core.clock import utc_now
from core.config import Settings
from core.records import NewsItem
from desk.news import news_message
from space.routes import build_space_router
from testbed.schemas import closed_schema
from ws.routes import ENDPOINTS

jsonschema = pytest.importorskip("jsonschema")


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return build_asyncapi()


def wire_models() -> list[type[BaseModel]]:
    """Every model in core/protocol.py that is a whole message: its `type` or `action` is a Literal."""
    found = []
    for name in protocol.__all__:
        obj = getattr(protocol, name)
        if inspect.isclass(obj) and issubclass(obj, BaseModel):
            fields = [obj.model_fields.get(key) for key in ("type", "action")]
            if any(f is not None and get_origin(f.annotation) is Literal for f in fields):
                found.append(obj)
    return found


def validator(document: dict[str, Any], schema_name: str) -> Any:
    root = {"components": document["components"], "$ref": f"#/components/schemas/{schema_name}"}
    return jsonschema.Draft202012Validator(closed_schema(root))


def schema_of(document: dict[str, Any], message: str) -> str:
    return document["components"]["messages"][message]["payload"]["$ref"].rsplit("/", 1)[-1]


def test_document_is_asyncapi_3_with_the_five_endpoints(document: dict[str, Any]) -> None:
    assert document["asyncapi"] == "3.0.0"
    addresses = {channel["address"] for channel in document["channels"].values()}
    assert addresses == {spec.path for spec in ENDPOINTS}


def test_every_protocol_message_is_documented(document: dict[str, Any]) -> None:
    documented = {
        m["payload"]["$ref"].rsplit("/", 1)[-1] for m in document["components"]["messages"].values()
    }
    assert {model.__name__ for model in wire_models()} <= documented


def test_union_of_client_messages_is_documented(document: dict[str, Any]) -> None:
    names = {model.__name__ for model in get_args(protocol.ClientMessage)}
    assert names <= set(document["components"]["schemas"])


def test_every_ref_resolves(document: dict[str, Any]) -> None:
    text = json.dumps(document)
    for ref in {part.split('"')[0] for part in text.split('"$ref": "')[1:]}:
        node: Any = document
        for key in ref.removeprefix("#/").split("/"):
            node = node[key]


def test_operations_use_their_own_channel_messages(document: dict[str, Any]) -> None:
    for operation in document["operations"].values():
        channel = operation["channel"]["$ref"].rsplit("/", 1)[-1]
        for message in operation["messages"]:
            assert message["$ref"].startswith(f"#/channels/{channel}/messages/")


def test_examples_validate_against_their_schemas(document: dict[str, Any]) -> None:
    for name, message in document["components"]["messages"].items():
        validator(document, schema_of(document, name)).validate(message["examples"][0]["payload"])


async def test_real_server_messages_validate(document: dict[str, Any], tmp_path: Path) -> None:
    runtime = compose(Settings(data_dir=tmp_path, symbols=("BTC",), log_file=None)).runtime
    await runtime.market.tick_in_turns()
    await runtime.publish_system_status()
    await runtime.publish_sentiment()
    await runtime.publish_models_status()
    news = news_message(NewsItem("t", "d", "https://n.example/1", "Wire", utc_now())).model_copy(
        update={"seq": 1, "epoch": "e"}
    )
    samples = {
        "price_update": runtime.bus.latest("market", "BTC").text,
        "system_status": runtime.bus.latest("system").text,
        "sentiment_update": runtime.bus.latest("sentiment").text,
        "models_status": runtime.bus.latest("models").text,
        "news": news.model_dump_json(),
        "error": protocol.error_frame(protocol.ErrorCode.RATE_LIMITED, "Too many messages", "limit 20/s"),
    }
    for name, text in samples.items():
        validator(document, schema_of(document, name)).validate(json.loads(text))
    runtime.store.close()


def test_schema_refuses_a_renamed_field(document: dict[str, Any]) -> None:
    payload = document["components"]["messages"]["price_update"]["examples"][0]["payload"]
    broken = {**payload, "data": {**payload["data"], "value": payload["data"].pop("price")}}
    with pytest.raises(jsonschema.ValidationError):
        validator(document, "PriceUpdateMessage").validate(broken)


def test_schema_refuses_an_undocumented_field(document: dict[str, Any]) -> None:
    payload = document["components"]["messages"]["price_update"]["examples"][0]["payload"]
    widened = {**payload, "data": {**payload["data"], "venue": "somewhere"}}
    with pytest.raises(jsonschema.ValidationError, match="'venue' was unexpected"):
        validator(document, "PriceUpdateMessage").validate(widened)


def test_channels_list_what_the_server_accepts() -> None:
    for spec in ENDPOINTS:
        channel = next(c for c in CHANNELS if c.address == spec.path)
        assert set(channel.receives) == set(spec.actions) | {"ping"}


def test_document_is_served_with_the_live_page_and_client() -> None:
    app = FastAPI()
    app.include_router(build_asyncapi_router())
    app.include_router(build_space_router(("BTC", "ETH")))
    client = TestClient(app)
    assert client.get("/asyncapi.json").json() == json.loads(json.dumps(build_asyncapi()))
    assert 'content="BTC,ETH"' in client.get("/live").text
    script = client.get("/space/static/hub-client.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert client.get("/space/static/..%2Fui.py").status_code == 404
