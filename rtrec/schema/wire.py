"""The JSON wire format and its validator, derived from the record definitions.

A record on the wire is one JSON object holding the schema's fields plus ``schema_version``.
The validator returns a precise reason instead of raising, because a bad event is data to route
to the dead-letter topic, not an error to crash on.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rtrec.schema.events import EVENT_SCHEMA, EVENT_TS, SCHEMA_VERSION_KEY
from rtrec.schema.fields import Field, Kind, RecordSchema

_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)


@dataclass(frozen=True)
class Validation:
    """Either a parsed record (``record``) or the reason it was rejected (``error``)."""

    record: dict[str, Any] | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.error is None


def encode(record: Mapping[str, Any], schema: RecordSchema = EVENT_SCHEMA) -> bytes:
    """Serialise a record (missing optional fields become null) with its schema version."""
    body = {f.name: record.get(f.name) for f in schema.fields}
    body[SCHEMA_VERSION_KEY] = schema.version
    return json.dumps(body, separators=(",", ":"), allow_nan=False).encode()


def validate(payload: bytes | str | None, schema: RecordSchema = EVENT_SCHEMA) -> Validation:
    """Parse and check one wire record against ``schema``."""
    if payload is None:
        return Validation(None, "empty payload")
    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        return Validation(None, f"not valid JSON: {exc}")
    if not isinstance(data, dict):
        return Validation(None, f"expected a JSON object, got {type(data).__name__}")
    version = data.get(SCHEMA_VERSION_KEY)
    if version != schema.version:
        return Validation(
            None, f"{SCHEMA_VERSION_KEY} {version!r} is not supported (expected {schema.version})"
        )
    known = set(schema.names) | {SCHEMA_VERSION_KEY}
    unknown = sorted(set(data) - known)
    if unknown:
        return Validation(None, f"unknown field {unknown[0]!r}")
    record: dict[str, Any] = {}
    for f in schema.fields:
        value = data.get(f.name)
        error = check_value(f, value)
        if error:
            return Validation(None, error)
        record[f.name] = float(value) if f.kind is Kind.DOUBLE and value is not None else value
    return Validation(record, None)


# How far an event's own time may run ahead of the time Kafka received it. A payload from the
# future would drag the event-time watermark forward and make every later event look late.
MAX_FUTURE_MS = 3_600_000

PARSE_ERROR = "parse_error"
# The flat row form engines use: the rejection reason (null when valid), then the event's fields.
PARSED_COLUMNS: tuple[str, ...] = (PARSE_ERROR, *EVENT_SCHEMA.names)


def parsed_row(payload: bytes | str | None, received_ms: int | None = None) -> tuple[Any, ...]:
    """``(None, *fields)`` for a valid event payload, ``(reason, None, ...)`` otherwise.

    ``received_ms`` (the Kafka record timestamp) rejects events more than ``MAX_FUTURE_MS``
    ahead of their arrival."""
    result = validate(payload)
    error = result.error
    if result.record is not None and received_ms is not None:
        ahead = result.record[EVENT_TS] - received_ms
        if ahead > MAX_FUTURE_MS:
            error = f"field 'event_ts' is {ahead} ms ahead of its arrival (max {MAX_FUTURE_MS})"
    if result.record is None or error is not None:
        return (error, *([None] * len(EVENT_SCHEMA.fields)))
    return (None, *(result.record[name] for name in EVENT_SCHEMA.names))


def check_value(f: Field, value: Any) -> str | None:
    """The reason ``value`` is not acceptable for ``f``, or None."""
    if value is None:
        return None if f.nullable else f"field {f.name!r} is missing or null"
    if f.kind is Kind.STRING:
        if not isinstance(value, str):
            return f"field {f.name!r} must be a string, got {_json_type(value)}"
        if not f.nullable and not value.strip():
            return f"field {f.name!r} must not be empty"
        if f.choices and value not in f.choices:
            return f"field {f.name!r} is {value!r}, not one of {', '.join(f.choices)}"
        return None
    if f.kind in (Kind.LONG, Kind.INT):
        if not isinstance(value, int) or isinstance(value, bool):
            return f"field {f.name!r} must be an integer, got {_json_type(value)}"
        low, high = _INT32 if f.kind is Kind.INT else _INT64
        if not low <= value <= high:
            return f"field {f.name!r} is out of range for {f.kind.value}"
    elif f.kind is Kind.DOUBLE:
        if not isinstance(value, int | float) or isinstance(value, bool):
            return f"field {f.name!r} must be a number, got {_json_type(value)}"
        if not math.isfinite(value):
            return f"field {f.name!r} must be finite"
    if f.minimum is not None and value < f.minimum:
        return f"field {f.name!r} is {value}, below the minimum {f.minimum:g}"
    return None


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__
