"""Flink forms of the record definitions: SQL DDL (with the event-time watermark) and row types.

The DDL is plain text and needs no PyFlink; ``flink_row_type`` imports PyFlink lazily.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rtrec.schema.events import EVENT_SCHEMA, EVENT_TS
from rtrec.schema.fields import Kind, RecordSchema

FLINK_SQL_TYPES = {
    Kind.STRING: "STRING",
    Kind.LONG: "BIGINT",
    Kind.INT: "INT",
    Kind.DOUBLE: "DOUBLE",
}
# The rowtime column every event table derives from event_ts.
EVENT_TIME = "event_time"


def interval(ms: int) -> str:
    """A Flink SQL interval literal for ``ms``: whole hours, minutes or seconds where possible
    (Flink rejects a day-time interval whose leading field needs more than 2 digits)."""
    for unit, size in (("HOUR", 3_600_000), ("MINUTE", 60_000), ("SECOND", 1000)):
        if ms % size == 0 and ms // size < 100:
            return f"INTERVAL '{ms // size}' {unit}"
    return f"INTERVAL '{ms / 1000:.3f}' SECOND"


def flink_columns(schema: RecordSchema = EVENT_SCHEMA) -> list[str]:
    """``name TYPE [NOT NULL]`` for each physical column, in schema order."""
    return [
        f"`{f.name}` {FLINK_SQL_TYPES[f.kind]}{'' if f.nullable else ' NOT NULL'}"
        for f in schema.fields
    ]


def event_table_ddl(
    table: str,
    options: Mapping[str, str],
    watermark_delay_ms: int,
    extra_columns: tuple[str, ...] = (),
) -> str:
    """CREATE TABLE for events with ``event_time`` as rowtime and a bounded-delay watermark."""
    delay = interval(watermark_delay_ms)
    columns = [
        *flink_columns(EVENT_SCHEMA),
        *extra_columns,
        f"`{EVENT_TIME}` AS TO_TIMESTAMP_LTZ(`{EVENT_TS}`, 3)",
        f"WATERMARK FOR `{EVENT_TIME}` AS `{EVENT_TIME}` - {delay}",
    ]
    return create_table_ddl(table, columns, options)


def create_table_ddl(table: str, columns: list[str], options: Mapping[str, str]) -> str:
    body = ",\n  ".join(columns)
    with_clause = ",\n  ".join(f"'{k}' = '{v}'" for k, v in options.items())
    return f"CREATE TABLE `{table}` (\n  {body}\n) WITH (\n  {with_clause}\n)"


def flink_row_type(schema: RecordSchema = EVENT_SCHEMA) -> Any:
    """The PyFlink ``DataTypes.ROW`` of the schema (for UDF result types and conversions)."""
    from pyflink.table import DataTypes

    kinds = {
        Kind.STRING: DataTypes.STRING,
        Kind.LONG: DataTypes.BIGINT,
        Kind.INT: DataTypes.INT,
        Kind.DOUBLE: DataTypes.DOUBLE,
    }
    return DataTypes.ROW(
        [DataTypes.FIELD(f.name, kinds[f.kind](nullable=f.nullable)) for f in schema.fields]
    )
