"""Arrow form of the record definitions (pyarrow imported lazily)."""

from __future__ import annotations

from typing import Any

from rtrec.schema.events import EVENT_SCHEMA
from rtrec.schema.fields import Kind, RecordSchema


def arrow_schema(schema: RecordSchema = EVENT_SCHEMA) -> Any:
    """The ``pyarrow.Schema`` of the schema, with its name and version as metadata."""
    import pyarrow as pa

    kinds = {
        Kind.STRING: pa.string(),
        Kind.LONG: pa.int64(),
        Kind.INT: pa.int32(),
        Kind.DOUBLE: pa.float64(),
    }
    return pa.schema(
        [pa.field(f.name, kinds[f.kind], nullable=f.nullable) for f in schema.fields],
        metadata={"rtrec.schema": schema.name, "rtrec.schema_version": str(schema.version)},
    )
