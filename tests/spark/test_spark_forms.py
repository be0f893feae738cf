"""Spark forms of the contract and the bronze transformation, on local Spark with Delta."""

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from rtrec.schema import CATALOGUE_SCHEMA, EVENT_SCHEMA, encode
from rtrec.schema.fields import Kind
from rtrec.schema.spark import spark_struct

pytestmark = [pytest.mark.component, pytest.mark.spark]


def test_struct_type_equals_the_definition() -> None:
    from pyspark.sql import types as T

    spark_types = {
        Kind.STRING: T.StringType(),
        Kind.LONG: T.LongType(),
        Kind.INT: T.IntegerType(),
        Kind.DOUBLE: T.DoubleType(),
    }
    for schema in (EVENT_SCHEMA, CATALOGUE_SCHEMA):
        struct = spark_struct(schema)
        assert struct.fieldNames() == list(schema.names)
        for field, definition in zip(struct.fields, schema.fields, strict=True):
            assert field.dataType == spark_types[definition.kind]
            assert field.nullable == definition.nullable


def test_to_bronze_keeps_every_record_and_parses_the_valid_ones(spark: Any, lake_dir: Path) -> None:
    from rtrec.batch.ingest import EVENT_DATE, PAYLOAD, to_bronze

    event = {
        "event_id": "e1",
        "user_id": "u1",
        "session_id": "s1",
        "item_id": "i9",
        "event_type": "purchase",
        "event_ts": 1_767_225_600_000,  # 2026-01-01T00:00:00Z
        "price": 12.5,
        "quantity": 1,
    }
    kafka_time = dt.datetime(2026, 3, 4, 5, 6, 7)
    rows = [
        (encode(event), 0, 10, kafka_time),
        (encode(event), 1, 11, kafka_time),  # a re-send: bronze keeps it
        (b"{oops", 0, 12, kafka_time),
    ]
    kafka = spark.createDataFrame(
        rows, "value binary, partition int, offset long, timestamp timestamp"
    )
    path = str(lake_dir / "bronze")
    to_bronze(kafka).write.format("delta").partitionBy(EVENT_DATE).save(path)

    bronze = spark.read.format("delta").load(path)
    assert bronze.columns[: len(EVENT_SCHEMA.fields) + 1] == ["parse_error", *EVENT_SCHEMA.names]
    got = {r["kafka_offset"]: r.asDict() for r in bronze.collect()}
    assert got[10]["parse_error"] is None and got[11]["parse_error"] is None
    for name in EVENT_SCHEMA.names:
        assert got[10][name] == event.get(name)
    assert got[10][EVENT_DATE] == dt.date(2026, 1, 1)
    assert got[12]["parse_error"].startswith("not valid JSON")
    assert got[12][PAYLOAD] == "{oops"
    assert got[12][EVENT_DATE] == kafka_time.date()  # no event time: falls back to Kafka's
