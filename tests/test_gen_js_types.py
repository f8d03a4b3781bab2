"""clients/gen_js_types.py: the committed messages.d.ts is what the message models give, byte for byte."""

from __future__ import annotations

import re
import typing

import pytest

from clients.gen_js_types import TYPES_PATH, UnsupportedSchema, main, render_types, ts_type
from core.asyncapi import MESSAGES


def test_committed_types_are_what_the_models_give() -> None:
    assert TYPES_PATH.read_bytes() == render_types().encode("utf-8"), (
        "clients/js/messages.d.ts is stale; run: python -m clients.gen_js_types"
    )


def test_check_flag_passes_on_the_committed_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--check"]) == 0
    assert capsys.readouterr().err == ""


def test_every_message_model_has_a_declaration() -> None:
    text = render_types()
    for spec in MESSAGES:
        assert f"export interface {spec.model.__name__} {{" in text


def test_event_map_lists_every_server_message_type() -> None:
    block = render_types().split("export interface ServerMessageByType {")[1].split("}")[0]
    kinds = set(re.findall(r"^\s+(\w+):", block, re.M))
    sent = {typing.get_args(s.model.model_fields["type"].annotation)[0] for s in MESSAGES if s.sent_by_server}
    assert kinds == sent


def test_server_fields_are_required_and_request_defaults_optional() -> None:
    text = render_types()
    assert "  sentiment_model: string | null;" in text  # a default, but the server always sends it
    assert "  keywords?: string[];" in text  # a request may leave it out


@pytest.mark.parametrize(("schema", "expected"), [
    ({"anyOf": [{"enum": ["a", "b"], "type": "string"}, {"type": "null"}]}, '"a" | "b" | null'),
    ({"type": "array", "items": {"anyOf": [{"type": "integer"}, {"type": "null"}]}}, "(number | null)[]"),
    ({"type": "object", "additionalProperties": {"$ref": "#/components/schemas/X"}}, "{ [key: string]: X }"),
    ({"type": "object"}, "{ [key: string]: unknown }"),
    ({}, "unknown"),
])
def test_ts_type_of_schemas_the_models_produce(schema, expected) -> None:
    assert ts_type(schema) == expected


def test_unknown_schema_keyword_is_refused() -> None:
    with pytest.raises(UnsupportedSchema, match="pattern"):
        ts_type({"type": "string", "pattern": "^a$"})
