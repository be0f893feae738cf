"""Python UDFs shared by the Flink jobs. Only logic SQL cannot express lives here."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from rtrec.schema.events import EVENT_SCHEMA
from rtrec.schema.fields import Kind
from rtrec.schema.wire import parsed_row


def _parse_event(payload: str | None) -> Iterator[tuple[Any, ...]]:
    yield parsed_row(payload)


def parse_event_udtf() -> Any:
    """``parse_event(payload)`` as a table function, so each payload is validated exactly once.
    Its columns are ``rtrec.schema.wire.PARSED_COLUMNS``."""
    from pyflink.table import DataTypes
    from pyflink.table.udf import udtf

    kinds = {
        Kind.STRING: DataTypes.STRING(),
        Kind.LONG: DataTypes.BIGINT(),
        Kind.INT: DataTypes.INT(),
        Kind.DOUBLE: DataTypes.DOUBLE(),
    }
    result_types = [DataTypes.STRING(), *(kinds[f.kind] for f in EVENT_SCHEMA.fields)]
    return udtf(_parse_event, result_types=result_types, name="parse_event")
