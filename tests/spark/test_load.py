"""A public dataset replayed into bronze (rtrec.batch.load): every valid event once, every bad
row kept with its reason, and curate's gold equal to the training code's own steps."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rtrec.batch.curate import ITEMS, TIMESTAMPS, USER_SEQUENCES, run_curate_job
from rtrec.batch.ingest import BRONZE_EVENTS, KAFKA_OFFSET, KAFKA_PARTITION
from rtrec.batch.load import load_dataset
from rtrec.config import load_settings
from rtrec.config.loader import project_root
from rtrec.schema.events import EVENT_TS, USER_ID
from rtrec.schema.wire import PARSE_ERROR
from rtrec.sources.replay import replay
from rtrec.training.data import user_steps

pytestmark = [pytest.mark.component, pytest.mark.spark]

# OTTO Recommender Systems Dataset, otto-de/recsys-dataset (CC BY 4.0): ../shared/data/README.md
OTTO_SAMPLE = project_root().parent / "shared" / "data" / "otto-sample" / "sessions.jsonl"


def test_a_replayed_dataset_lands_in_bronze_and_curates_like_the_stream(
    spark: Any, lake_dir: Path, tmp_path: Path
) -> None:
    dataset = tmp_path / "sessions.jsonl"
    broken = '{"session": 7, "events": [{"aid": 1, "type": "clicks"}]}'  # no ts
    dataset.write_text(OTTO_SAMPLE.read_text() + broken + "\n")
    settings = load_settings("local", [f"lake.root={lake_dir}"])
    events = [e for e in replay("otto", dataset) if isinstance(e, dict)]

    loaded = load_dataset(spark, settings, "otto", dataset)
    assert (loaded.events, loaded.bad_rows) == (862, 1) == (len(events), 1)
    bronze = spark.read.format("delta").load(settings.lake.table_path(*BRONZE_EVENTS))
    assert bronze.count() == 863
    rejected = bronze.where(bronze[PARSE_ERROR].isNotNull()).collect()
    assert len(rejected) == 1
    dead_letter = json.loads(rejected[0]["payload"])
    assert dead_letter["raw"] == broken and "ts" in dead_letter["reason"]
    assert dead_letter["source"] == "otto:sessions.jsonl:21"
    # A user's events keep their (event-time) order within one partition.
    by_user: dict[str, list[Any]] = {}
    for row in bronze.where(bronze[PARSE_ERROR].isNull()).orderBy(KAFKA_OFFSET).collect():
        by_user.setdefault(row[USER_ID], []).append(row)
    for rows in by_user.values():
        assert len({r[KAFKA_PARTITION] for r in rows}) == 1
        assert [r[EVENT_TS] for r in rows] == sorted(r[EVENT_TS] for r in rows)

    # Loading the file again changes nothing downstream: its event ids are deterministic.
    load_dataset(spark, settings, "otto", dataset)
    run_curate_job(settings)
    gold = spark.read.format("delta").load(settings.lake.table_path(*USER_SEQUENCES))
    got = {r[USER_ID]: (r[ITEMS], r[TIMESTAMPS]) for r in gold.collect()}
    expected = user_steps(events)
    assert got == {u: ([s.item for s in v], [s.ts for s in v]) for u, v in expected.items()}
    assert len(got) == 20
