"""JSON Schema helpers for the contract tests."""

from __future__ import annotations

from typing import Any

__all__ = ["closed_schema"]


def closed_schema(schema: Any) -> Any:
    """`schema` with every object that lists its properties closed to others (`additionalProperties: false`).

    A model that accepts more keys says so (pydantic's `extra="allow"` declares
    `additionalProperties: true`); every other one must not send a key its schema does not document.
    """
    if isinstance(schema, list):
        return [closed_schema(part) for part in schema]
    if not isinstance(schema, dict):
        return schema
    closed = {key: closed_schema(value) for key, value in schema.items()}
    if isinstance(schema.get("properties"), dict) and "additionalProperties" not in schema:
        closed["additionalProperties"] = False
    return closed
