"""Flink forms of the contract and the behaviour-features pipeline on a local mini-cluster."""

from pathlib import Path
from typing import Any

import pytest

from rtrec.config import load_settings
from rtrec.schema import EVENT_SCHEMA
from rtrec.schema.fields import Kind
from rtrec.schema.flink import EVENT_TIME, event_table_ddl, flink_row_type

pytestmark = [pytest.mark.component, pytest.mark.flink]

FLINK_TYPES = {Kind.STRING: "STRING", Kind.LONG: "BIGINT", Kind.INT: "INT", Kind.DOUBLE: "DOUBLE"}


@pytest.fixture(scope="module")
def t_env(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from rtrec.streaming.environment import create_table_env

    checkpoints = tmp_path_factory.mktemp("checkpoints")
    settings = load_settings("local", [f"flink.checkpoint_dir={checkpoints}"])
    return create_table_env(settings, "rtrec-test")


def test_event_table_ddl_resolves_to_the_definition(t_env: Any, tmp_path: Path) -> None:
    options = {"connector": "filesystem", "path": str(tmp_path), "format": "json"}
    t_env.execute_sql(event_table_ddl("events_typed", options, watermark_delay_ms=3000))
    with t_env.execute_sql("DESCRIBE events_typed").collect() as result:
        rows = list(result)
    described = [(row[0], row[1], row[2]) for row in rows]  # name, type, nullable
    watermarks = [row[5] for row in rows if row[5]]
    physical = len(EVENT_SCHEMA.fields)
    assert described[:physical] == [
        (f.name, FLINK_TYPES[f.kind], f.nullable) for f in EVENT_SCHEMA.fields
    ]
    assert described[physical:] == [(EVENT_TIME, "TIMESTAMP_LTZ(3) *ROWTIME*", True)]
    assert watermarks == [f"`{EVENT_TIME}` - INTERVAL '3' SECOND"]


def test_row_type_matches_the_definition() -> None:
    row = flink_row_type(EVENT_SCHEMA)
    assert row.field_names() == list(EVENT_SCHEMA.names)
    for data_type, f in zip(row.field_types(), EVENT_SCHEMA.fields, strict=True):
        assert data_type._nullable == f.nullable
