"""A record definition as JSON Schema (the HTTP API's OpenAPI document uses it): derived from
the same fields as every engine's types, so the documented contract cannot drift from the
validator (``rtrec.schema.wire``), which stays the one that decides."""

from __future__ import annotations

from typing import Any

from rtrec.schema.events import SCHEMA_VERSION_KEY
from rtrec.schema.fields import Field, Kind, RecordSchema

_TYPES = {Kind.STRING: "string", Kind.LONG: "integer", Kind.INT: "integer", Kind.DOUBLE: "number"}


def json_schema(schema: RecordSchema) -> dict[str, Any]:
    properties: dict[str, Any] = {
        SCHEMA_VERSION_KEY: {
            "type": "integer",
            "enum": [schema.version],
            "description": "wire format version (the API fills it in when absent)",
        }
    }
    for f in schema.fields:
        properties[f.name] = _property(f)
    return {
        "title": schema.name,
        "type": "object",
        "properties": properties,
        "required": [f.name for f in schema.fields if not f.nullable],
        "additionalProperties": False,
    }


def _property(f: Field) -> dict[str, Any]:
    prop: dict[str, Any] = {"type": _TYPES[f.kind], "description": f.doc}
    if f.nullable:
        prop["type"] = [prop["type"], "null"]
    if f.choices:
        prop["enum"] = list(f.choices)
    if f.minimum is not None:
        prop["minimum"] = f.minimum
    return prop
