"""Flink forms of the contract and the behaviour-features pipeline on a local mini-cluster."""

import json
from pathlib import Path
from typing import Any

import pytest

from rtrec.config import load_settings
from rtrec.features.user_counts import COUNT_COLUMNS, LAST_EVENT_TS, user_counts
from rtrec.schema import EVENT_SCHEMA, encode, validate
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
    assert watermarks == [f"`{EVENT_TIME}` - INTERVAL '3.000' SECOND"]


def test_row_type_matches_the_definition() -> None:
    row = flink_row_type(EVENT_SCHEMA)
    assert row.field_names() == list(EVENT_SCHEMA.names)
    for data_type, f in zip(row.field_types(), EVENT_SCHEMA.fields, strict=True):
        assert data_type._nullable == f.nullable


def test_pipeline_dead_letters_bad_payloads_and_counts_each_event_once(
    t_env: Any, tmp_path: Path
) -> None:
    from rtrec.streaming.behaviour_features import build_behaviour_features_pipeline

    events = [
        {
            "event_id": f"e{n}",
            "user_id": f"u{n % 5}",
            "session_id": f"s{n % 9}",
            "item_id": f"i{n % 13}",
            "event_type": ("view", "click", "add_to_cart", "purchase")[n % 4],
            "event_ts": 1_000 + n,
        }
        for n in range(200)
    ]
    resent = events[:20]
    bad = [b"{broken", b'{"schema_version": 1, "event_id": "x"}', b"42"]
    lines = [encode(e) for e in events + resent] + bad
    (tmp_path / "events.txt").write_bytes(b"\n".join(lines) + b"\n")
    t_env.execute_sql(
        f"CREATE TEMPORARY TABLE raw_file (payload STRING, proc_time AS PROCTIME()) WITH ("
        f"'connector' = 'filesystem', 'path' = '{tmp_path / 'events.txt'}', 'format' = 'raw')"
    )
    tables = build_behaviour_features_pipeline(t_env, "raw_file")

    with tables.dead_letters.execute().collect() as rows:
        dead = {row[0]: row[1] for row in rows}
    assert set(dead) == {b.decode() for b in bad}
    assert all(reason == validate(raw).error for raw, reason in dead.items())

    latest: dict[str, dict[str, int]] = {}
    columns = [*COUNT_COLUMNS, LAST_EVENT_TS]
    with tables.user_features.execute().collect() as rows:
        for row in rows:  # a changelog: the last insert/update-after per user is the result
            if row.get_row_kind().name in ("INSERT", "UPDATE_AFTER"):
                latest[row[0]] = dict(zip(columns, row[1:], strict=True))
    assert latest == user_counts(json.loads(line) for line in lines[: len(events) + len(resent)])
