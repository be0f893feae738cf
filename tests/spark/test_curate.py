"""bronze -> silver (MERGE dedup, sessions) -> gold training tables, on simulated traffic with
re-sends, malformed payloads and events out of order (rtrec.batch.curate)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from conftest import bronze_frame, simulate

from rtrec.batch.curate import (
    HISTORY,
    ITEMS,
    POSITION,
    SESSION_START,
    SPLIT,
    STEP_TYPES,
    TARGET,
    TEST,
    TIMESTAMPS,
    merge_into_silver,
    new_silver_rows,
    split_time,
    training_examples,
    user_sequences,
)
from rtrec.batch.ingest import KAFKA_OFFSET, KAFKA_PARTITION, valid_events
from rtrec.config import Settings
from rtrec.features.definitions import SESSION_GAP_MS
from rtrec.schema.events import EVENT_ID, EVENT_TS, USER_ID
from rtrec.training.data import user_steps

pytestmark = [pytest.mark.component, pytest.mark.spark]


def test_silver_and_gold(spark: Any, spark_settings: Settings, lake_dir: Path) -> None:
    arrivals = simulate(spark_settings).arrivals
    bronze = bronze_frame(spark, arrivals).cache()
    path = str(lake_dir / "silver")
    # A first run on part of bronze, then a run on all of it: the overlap must not double.
    merge_into_silver(spark, path, new_silver_rows(bronze_frame(spark, arrivals[:700])))
    merge_into_silver(spark, path, new_silver_rows(bronze))
    merge_into_silver(spark, path, new_silver_rows(bronze))  # a rerun adds nothing
    silver = spark.read.format("delta").load(path)
    rows = [r.asDict() for r in silver.collect()]
    ids = [r[EVENT_ID] for r in rows]
    valid = {r[EVENT_ID] for r in valid_events(bronze).select(EVENT_ID).collect()}
    assert len(ids) == len(set(ids)) and set(ids) == valid and len(valid) > 1_400

    # Sessions: recomputed here from the rows, a new one after a gap of more than 30 min.
    by_user: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_user[row[USER_ID]].append(row)
    sessions = 0
    for user_rows in by_user.values():
        user_rows.sort(key=lambda r: (r[EVENT_TS], r[EVENT_ID]))
        start = None
        for n, row in enumerate(user_rows):
            if n == 0 or row[EVENT_TS] - user_rows[n - 1][EVENT_TS] > SESSION_GAP_MS:
                start, sessions = row[EVENT_TS], sessions + 1
            assert row[SESSION_START] == start
    assert len(by_user) < sessions < len(rows)

    # Sequences: the training code's own user_steps, over the rows in arrival order.
    sequences = user_sequences(silver).cache()
    in_arrival_order = sorted(rows, key=lambda r: (r[KAFKA_PARTITION], r[KAFKA_OFFSET]))
    expected = user_steps(in_arrival_order)
    got = {r[USER_ID]: (r[ITEMS], r[TIMESTAMPS]) for r in sequences.collect()}
    assert got == {u: ([s.item for s in v], [s.ts for s in v]) for u, v in expected.items()}
    types = {r[USER_ID]: r[STEP_TYPES] for r in sequences.collect()}
    assert types == {u: [s.event_type for s in v] for u, v in expected.items()}

    # Examples: every step after a user's first, its history capped, split by time.
    split_ts = split_time(sequences, 0.2)
    examples = training_examples(sequences, split_ts, max_history=3).collect()
    assert len(examples) == sum(len(items) - 1 for items, _ in got.values())
    for example in examples:
        items, times = got[example[USER_ID]]
        n = example[POSITION]
        assert example[TARGET] == items[n]
        assert example[HISTORY] == items[max(0, n - 3) : n]
        assert (example[SPLIT] == TEST) == (times[n] >= split_ts)
    steps = sorted(t for _, times in got.values() for t in times)
    assert split_ts == steps[int(len(steps) * 0.8)]
    assert 0.1 < sum(e[SPLIT] == TEST for e in examples) / len(examples) < 0.3


def test_bought_together_counts_shared_baskets(spark: Any) -> None:
    from rtrec.batch.curate import RELATED, SCORE, bought_together

    rows = [  # (user, session start, item, type)
        ("u1", 0, "tent", "purchase"),
        ("u1", 0, "stove", "purchase"),
        ("u1", 0, "mat", "view"),  # viewed, not bought
        ("u2", 0, "tent", "purchase"),
        ("u2", 0, "stove", "purchase"),
        ("u2", 0, "tent", "purchase"),  # bought twice in one basket: one basket
        ("u2", 9, "tent", "purchase"),
        ("u2", 9, "lamp", "purchase"),  # another session of u2
        ("u3", 0, "lamp", "purchase"),  # alone in its basket
    ]
    silver = spark.createDataFrame(
        rows, f"{USER_ID} string, {SESSION_START} long, item_id string, event_type string"
    )
    got = {
        r["item_id"]: [(x["item_id"], x[SCORE]) for x in r[RELATED]]
        for r in bought_together(silver, top=1).collect()
    }
    # tent: stove in 2 baskets, lamp in 1 -> top 1 is stove; ties never arise here.
    assert got == {"tent": [("stove", 2.0)], "stove": [("tent", 2.0)], "lamp": [("tent", 1.0)]}
    both = bought_together(silver).where("item_id = 'tent'").collect()[0][RELATED]
    assert [(x["item_id"], x[SCORE]) for x in both] == [("stove", 2.0), ("lamp", 1.0)]
