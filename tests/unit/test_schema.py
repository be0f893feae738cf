"""The event contract: wire format, validator reasons, and the Arrow and Flink-DDL forms."""

import json
import re

import pytest

from rtrec.schema import CATALOGUE_SCHEMA, EVENT_SCHEMA, Kind, encode, validate
from rtrec.schema.events import SCHEMA_VERSION_KEY
from rtrec.schema.flink import EVENT_TIME, event_table_ddl, flink_columns
from rtrec.schema.wire import PARSED_COLUMNS, parsed_row

pytestmark = pytest.mark.unit

EVENT = {
    "event_id": "e1",
    "user_id": "u1",
    "session_id": "s1",
    "item_id": "i1",
    "event_type": "add_to_cart",
    "event_ts": 1_767_225_600_000,
    "price": 19.5,
    "quantity": 2,
    "device": "mobile",
}


def test_encode_then_validate_round_trips_every_field() -> None:
    result = validate(encode(EVENT))
    assert result.ok
    assert result.record == {name: EVENT.get(name) for name in EVENT_SCHEMA.names}


def test_wire_format_carries_the_schema_version_and_every_field_in_order() -> None:
    body = json.loads(encode(EVENT))
    assert body[SCHEMA_VERSION_KEY] == EVENT_SCHEMA.version == 1
    assert list(body)[: len(EVENT_SCHEMA.fields)] == list(EVENT_SCHEMA.names)


def test_integer_price_is_accepted_as_a_double() -> None:
    result = validate(encode({**EVENT, "price": 20}))
    assert result.record is not None and result.record["price"] == 20.0
    assert isinstance(result.record["price"], float)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "expected a JSON object, got list"),
        (None, "empty payload"),
        (json.dumps({**EVENT, "schema_version": 2}), "schema_version 2 is not supported"),
        (json.dumps({**EVENT}), "schema_version None is not supported"),
        (encode({**EVENT, "user_id": None}), "field 'user_id' is missing or null"),
        (encode({**EVENT, "user_id": "  "}), "field 'user_id' must not be empty"),
        (encode({**EVENT, "item_id": 7}), "field 'item_id' must be a string, got number"),
        (encode({**EVENT, "event_type": "hover"}), "field 'event_type' is 'hover', not one of"),
        (encode({**EVENT, "event_ts": "yesterday"}), "field 'event_ts' must be an integer"),
        (encode({**EVENT, "event_ts": True}), "field 'event_ts' must be an integer, got boolean"),
        (encode({**EVENT, "event_ts": -1}), "field 'event_ts' is -1, below the minimum 0"),
        (encode({**EVENT, "price": -0.5}), "field 'price' is -0.5, below the minimum 0"),
        (encode({**EVENT, "quantity": 2**31}), "field 'quantity' is out of range for int"),
        (encode({**EVENT, "quantity": 1.5}), "field 'quantity' must be an integer, got number"),
        (
            json.dumps({**json.loads(encode(EVENT)), "colour": "red"}),
            "unknown field 'colour'",
        ),
    ],
)
def test_validator_names_the_precise_reason(payload: bytes | str | None, reason: str) -> None:
    result = validate(payload)
    assert result.record is None
    assert result.error is not None and result.error.startswith(reason), result.error


def test_parsed_row_is_reason_then_fields() -> None:
    assert PARSED_COLUMNS[1:] == EVENT_SCHEMA.names
    good = parsed_row(encode(EVENT))
    assert good[0] is None and good[1:] == tuple(EVENT.get(n) for n in EVENT_SCHEMA.names)
    bad = parsed_row(b"{")
    assert bad[0] is not None and set(bad[1:]) == {None}


def test_catalogue_validates_with_the_same_machinery() -> None:
    item = {"item_id": "i1", "category_id": "c1", "price": 5.0, "created_ts": 0}
    assert validate(encode(item, CATALOGUE_SCHEMA), CATALOGUE_SCHEMA).ok
    missing = validate(encode({**item, "category_id": None}, CATALOGUE_SCHEMA), CATALOGUE_SCHEMA)
    assert missing.error == "field 'category_id' is missing or null"


def test_arrow_schema_equals_the_definition() -> None:
    pa = pytest.importorskip("pyarrow", reason="pyarrow is part of the app environment")
    from rtrec.schema.arrow import arrow_schema

    arrow_types = {
        Kind.STRING: pa.string(),
        Kind.LONG: pa.int64(),
        Kind.INT: pa.int32(),
        Kind.DOUBLE: pa.float64(),
    }
    for schema in (EVENT_SCHEMA, CATALOGUE_SCHEMA):
        derived = arrow_schema(schema)
        assert derived.names == list(schema.names)
        for field, definition in zip(derived, schema.fields, strict=True):
            assert field.type == arrow_types[definition.kind]
            assert field.nullable == definition.nullable
        assert derived.metadata[b"rtrec.schema_version"] == str(schema.version).encode()


def test_flink_ddl_declares_columns_in_order_with_nullability_and_a_watermark() -> None:
    ddl = event_table_ddl("events", {"connector": "kafka", "topic": "t"}, watermark_delay_ms=2500)
    declared = re.findall(r"^\s+`(\w+)` (\w+)( NOT NULL)?,?$", ddl, flags=re.M)
    assert [name for name, _, _ in declared] == list(EVENT_SCHEMA.names)
    for (_, _, not_null), field in zip(declared, EVENT_SCHEMA.fields, strict=True):
        assert bool(not_null) == (not field.nullable)
    assert f"WATERMARK FOR `{EVENT_TIME}` AS `{EVENT_TIME}` - INTERVAL '2.500' SECOND" in ddl
    assert "'topic' = 't'" in ddl
    assert len(flink_columns(CATALOGUE_SCHEMA)) == len(CATALOGUE_SCHEMA.fields)
