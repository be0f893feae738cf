"""Spark form of the record definitions (PySpark imported lazily)."""

from __future__ import annotations

from typing import Any

from rtrec.schema.events import EVENT_SCHEMA
from rtrec.schema.fields import Kind, RecordSchema


def spark_struct(schema: RecordSchema = EVENT_SCHEMA) -> Any:
    """The ``StructType`` of the schema, fields in order with their nullability."""
    from pyspark.sql import types as T

    kinds = {
        Kind.STRING: T.StringType(),
        Kind.LONG: T.LongType(),
        Kind.INT: T.IntegerType(),
        Kind.DOUBLE: T.DoubleType(),
    }
    return T.StructType([T.StructField(f.name, kinds[f.kind], f.nullable) for f in schema.fields])
