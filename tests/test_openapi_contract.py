"""Every REST route answers what the app's own `/openapi.json` declares, for each status it sends.

Real apps on free loopback ports (inference off; inference on with the lexicon alone; a rate limit of
one request), real requests, and each body validated with `jsonschema` against the declared schema,
closed to keys it does not document.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator

from testbed.harness import FAST_ENV, MS, AppProcess, running_app
from testbed.schemas import closed_schema

pytestmark = pytest.mark.slow

ADMIN = {"Authorization": f"Bearer {FAST_ENV['ADMIN_TOKEN']}"}
SETTLE_S = 30_000 * MS
ERROR_SCHEMAS = {"#/components/schemas/ErrorResponse", "#/components/schemas/ValidationErrorResponse"}
# Documented exception: a 503 from /ready is the readiness body, what a probe reads.
ERROR_SHAPE_EXCEPTIONS = {("/ready", "get", "503")}


@dataclass(frozen=True)
class Call:
    app: str  # "off", "on" (inference with the lexicon) or "limited" (every request past the first is 429)
    method: str
    path: str  # the OpenAPI path; `url` when the request's differs
    status: int
    url: str = ""
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.app}-{self.method.upper()}-{self.url or self.path}-{self.status}"


CALLS = [
    *(Call(app, "get", path, 200) for app in ("off", "on") for path in (
        "/health", "/api/status", "/api/prices", "/api/sentiment/market", "/api/news", "/ready",
        "/asyncapi.json", "/metrics")),
    Call("on", "get", "/api/models", 200),
    Call("off", "get", "/api/models", 503),
    Call("off", "get", "/api/history/{symbol}", 200, "/api/history/btc?interval=1m&limit=5"),
    Call("off", "get", "/api/history/{symbol}", 404, "/api/history/NOPE"),
    Call("off", "get", "/api/history/{symbol}", 422, "/api/history/BTC?interval=2m"),
    Call("off", "get", "/api/news", 200, "/api/news?q=bitcoin&limit=5"),
    Call("off", "get", "/api/news", 422, "/api/news?limit=0"),
    Call("off", "post", "/api/news", 201, kwargs={"headers": ADMIN, "json": {
        "title": "Bitcoin ETF inflows rise", "url": "https://news.example/contract", "source": "Wire"}}),
    Call("off", "post", "/api/news", 401, kwargs={"json": {}}),
    Call("off", "post", "/api/news", 422, kwargs={"headers": ADMIN, "json": {"title": ""}}),
    Call("off", "post", "/api/news", 413, kwargs={
        "headers": {**ADMIN, "content-type": "application/json"}, "content": b" " * 2_000_000}),
    Call("off", "post", "/api/sentiment", 503, kwargs={"json": {"texts": ["x"]}}),
    Call("off", "post", "/api/models/{model_id}/load", 401, "/api/models/lexicon/load"),
    Call("off", "post", "/api/models/{model_id}/load", 503, "/api/models/lexicon/load", {"headers": ADMIN}),
    Call("on", "post", "/api/sentiment", 200, kwargs={"json": {"texts": ["BTC to the moon", "got rekt"]}}),
    Call("on", "post", "/api/sentiment", 200, kwargs={"json": {"texts": ["hodl"], "model": "lexicon",
                                                                "domain": "social"}}),
    Call("on", "post", "/api/sentiment", 404, kwargs={"json": {"texts": ["x"], "model": "nobody/nothing"}}),
    Call("on", "post", "/api/sentiment", 413, kwargs={"json": {"texts": ["x"] * 257}}),
    Call("on", "post", "/api/sentiment", 422, kwargs={"json": {"texts": "one string"}}),
    Call("on", "post", "/api/models/{model_id}/load", 202, "/api/models/lexicon/load", {"headers": ADMIN}),
    Call("on", "post", "/api/models/{model_id}/load", 404, "/api/models/nobody/nothing/load", {"headers": ADMIN}),
    Call("on", "post", "/api/models/{model_id}/unload", 409, "/api/models/lexicon/unload", {"headers": ADMIN}),
    Call("limited", "get", "/api/prices", 429),
    Call("limited", "post", "/api/sentiment", 429, kwargs={"json": {"texts": ["x"]}}),
]


def _settled(app: AppProcess) -> AppProcess:
    """Wait until the status and sentiment snapshots exist and the models settled; post one news item."""
    deadline = time.monotonic() + SETTLE_S
    paths = ("/api/status", "/api/sentiment/market", "/ready")
    while not all(httpx.get(app.http + path, timeout=10).status_code == 200 for path in paths):
        assert time.monotonic() < deadline, f"the app did not settle:\n{app.log()[-3000:]}"
        time.sleep(100 * MS)
    assert app.post_news(title="Bitcoin rallies").status_code == 201
    return app


@pytest.fixture(scope="module")
def apps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, AppProcess]]:
    with (
        running_app(tmp_path_factory.mktemp("off")) as off,
        running_app(tmp_path_factory.mktemp("on"), ENABLE_INFERENCE="1", MODELS="lexicon") as on,
        running_app(tmp_path_factory.mktemp("limited"), REST_RATE_PER_S="0.001", REST_BURST="1") as limited,
    ):
        yield {"off": _settled(off), "on": _settled(on), "limited": limited}


@pytest.fixture(scope="module")
def specs(apps: dict[str, AppProcess]) -> dict[str, dict[str, Any]]:
    return {name: httpx.get(f"{apps[name].http}/openapi.json", timeout=10).json() for name in ("off", "on")}


def _operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def _json_schema(operation: dict[str, Any], status: str) -> dict[str, Any] | None:
    content = operation["responses"].get(status, {}).get("content", {})
    return content["application/json"]["schema"] if "application/json" in content else None


def _success(operation: dict[str, Any]) -> str:
    [status] = [status for status in operation["responses"] if status.startswith("2")]
    return status


@pytest.mark.parametrize("mode", ["off", "on"])
def test_every_route_declares_a_named_model_for_its_success(specs, mode):
    """An untyped route (`dict[str, Any]`, `Any`, a bare JSONResponse) shows an anonymous or empty schema."""
    spec = specs[mode]
    untyped = []
    for path, method, operation in _operations(spec):
        content = operation["responses"][_success(operation)].get("content", {})
        schema = _json_schema(operation, _success(operation))
        if schema is None:  # not JSON (/metrics, /live): it must say its media type
            typed = bool(content) and all(entry.get("schema") for entry in content.values())
        else:
            name = schema.get("$ref", "").removeprefix("#/components/schemas/")
            typed = bool(spec["components"]["schemas"].get(name, {}).get("properties"))
        if not typed:
            untyped.append(f"{method.upper()} {path}: {content}")
    assert not untyped, "routes without a declared response model:\n" + "\n".join(untyped)


@pytest.mark.parametrize("mode", ["off", "on"])
def test_every_error_status_declares_the_error_shape(specs, mode):
    wrong = []
    for path, method, operation in _operations(specs[mode]):
        if "429" not in operation["responses"]:
            wrong.append(f"{method.upper()} {path}: no 429 (the guard rate-limits every route)")
        for status in operation["responses"]:
            ref = (_json_schema(operation, status) or {}).get("$ref")
            if status >= "400" and (path, method, status) not in ERROR_SHAPE_EXCEPTIONS and ref not in ERROR_SCHEMAS:
                wrong.append(f"{method.upper()} {path} {status}: {ref}")
    assert not wrong, "\n".join(wrong)


def test_every_route_is_called_by_this_module(specs):
    called = {(call.method, call.path) for call in CALLS}
    declared = {(method, path) for spec in specs.values() for path, method, _ in _operations(spec)}
    assert declared - called <= {("get", "/live")}  # HTML; test_asyncapi and the UI tests fetch it


@pytest.mark.parametrize("call", CALLS, ids=str)
def test_response_matches_the_declared_schema(apps, specs, call):
    response = httpx.request(call.method, apps[call.app].http + (call.url or call.path), timeout=30, **call.kwargs)
    operation = specs["off" if call.app == "limited" else call.app]["paths"][call.path][call.method]
    assert response.status_code == call.status, response.text[:500]
    declared = operation["responses"].get(str(call.status))
    assert declared is not None, f"{call.status} is not declared for {call.method.upper()} {call.path}"
    schema = _json_schema(operation, str(call.status))
    if schema is None:
        [media_type] = declared["content"]
        assert response.headers["content-type"].split(";")[0] == media_type.split(";")[0]
        return
    assert response.headers["content-type"] == "application/json"
    spec = specs["off" if call.app == "limited" else call.app]
    validator = Draft202012Validator(closed_schema({**schema, "components": spec["components"]}))
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(response.json())]
    assert not errors, "\n".join(errors[:10])
