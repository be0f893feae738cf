"""Stream/batch parity on real Kafka: the same events (out of order, re-sent, malformed and
late) through the Flink features job and, via Spark ingest into Delta bronze, through the Spark
twin. Every window, session and total the stream committed, and each user's latest recent
items, categories and category affinity, equal the batch result exactly."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import Stack, consume_all, latest_records, latest_totals, shuffled

from rtrec.features.definitions import (
    ENTITY_ID,
    FEATURE_GROUP,
    FEATURES,
    RECENT_GROUPS,
    TOTALS_GROUP,
    WINDOW_END,
    WINDOW_START,
)
from rtrec.launch import flink_job_command, run_to_completion, spark_job_command, start_job
from rtrec.producer import produce
from rtrec.sources.simulator import Simulator
from rtrec.streaming.scratch import PREFIX

pytestmark = pytest.mark.integration

TIMEOUT_S = 240
HOUR_MS = 3_600_000
MARKERS = 8  # fresh events from several users, so every partition's watermark moves past all


def record_key(value: dict[str, Any]) -> tuple[str, str, int, int, str]:
    features = json.dumps(value[FEATURES], sort_keys=True)
    return (
        value[ENTITY_ID],
        value[FEATURE_GROUP],
        value[WINDOW_START],
        value[WINDOW_END],
        features,
    )


def differences(stream: set[tuple[Any, ...]], batch: set[tuple[Any, ...]]) -> str:
    """Each differing window, stream beside batch, by (entity, group, start)."""
    by_window: dict[tuple[Any, ...], list[Any]] = {}
    for side, records in ((0, stream - batch), (1, batch - stream)):
        for record in records:
            by_window.setdefault(record[:3], [None, None])[side] = record[3:]
    lines = [f"{key}: stream {s} batch {b}" for key, (s, b) in sorted(by_window.items())[:20]]
    return f"{len(by_window)} windows differ:\n" + "\n".join(lines)


def stream_windows(bootstrap: str, topics: list[str]) -> set[tuple[str, str, int, int, str]]:
    found = set()
    for topic in topics:
        for message in consume_all(bootstrap, topic):
            value = json.loads(message.value())
            # Totals and recent groups are updated in place; the rest are final per window.
            if value[FEATURE_GROUP] not in (TOTALS_GROUP, *RECENT_GROUPS):
                found.add(record_key(value))
    return found


def test_stream_and_batch_compute_the_same_features(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from deltalake import DeltaTable

    base = tmp_path_factory.mktemp("parity")
    settings, args = stack.isolated("parity")
    lake = [f"lake.root={base / 'lake'}", f"lake.checkpoint_root={base / 'checkpoints'}"]
    args = [*args, *(a for item in lake for a in ("--set", item))]
    topics, bootstrap = settings.kafka.topics, settings.kafka.bootstrap_servers
    simulator = Simulator(settings.simulator, events=3000, duplicates=60, malformed=30, days=1)
    records = shuffled(list(simulator.stream()))
    produce(settings, records, source="test")

    job = start_job(
        "behaviour_features",
        flink_job_command(settings, "behaviour_features", args),
        base / "behaviour_features.log",
    )
    try:
        # Quiet: the totals stop changing once the first wave is processed.
        previous: dict[str, Any] = {}
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            assert job.alive(), job.tail()
            current = latest_totals(bootstrap, topics.user_features)
            if current and current == previous:
                break
            previous = current
            time.sleep(5)
        # Late: valid, new events an hour behind everything produced so far.
        events = [r for r in records if isinstance(r, dict)]
        newest = max(e["event_ts"] for e in events)
        late = [
            {
                **e,
                "event_id": f"late-{n}",
                "user_id": f"late-user-{n}",
                "event_ts": newest - HOUR_MS,
            }
            for n, e in enumerate(events[:15])
        ]
        # Markers a day past the newest event close every window and session of the traffic.
        markers = [
            {**events[0], "event_id": f"marker-{n}", "user_id": f"marker-{n}",
             "item_id": "marker-item", "event_ts": newest + 25 * HOUR_MS}
            for n in range(MARKERS)
        ]  # fmt: skip
        produce(settings, [*late, *markers], source="test")
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            assert job.alive(), job.tail()
            totals = latest_totals(bootstrap, topics.user_features)
            if all(f"marker-{n}" in totals for n in range(MARKERS)):
                break
            time.sleep(3)
        time.sleep(4 * settings.flink.checkpoint_interval_ms / 1000)  # last windows commit
        # The mini-cluster works in the job process's scratch directory, not loose in /tmp...
        (scratch,) = Path(tempfile.gettempdir()).glob(f"{PREFIX}{job.process.pid}-*")
        assert list(scratch.glob("minicluster_*/tm_*"))
    finally:
        job.stop()
    assert not scratch.exists()  # ...which the job removed when it was stopped (SIGTERM)

    ledger = list(consume_all(bootstrap, topics.late_events))
    assert len(ledger) >= len(late)  # the planted ones at least; re-sends may be late too

    logs = base / "logs"
    ingest = spark_job_command(
        settings, "ingest", [*args, "--set", "lake.ingest_trigger=available_now"]
    )
    run_to_completion("ingest", ingest, logs / "ingest.log", timeout_s=300)
    backfill = spark_job_command(settings, "backfill_features", args)
    run_to_completion("backfill_features", backfill, logs / "backfill.log", timeout_s=300)

    def batch(table: str) -> list[dict[str, Any]]:
        rows = DeltaTable(str(base / "lake" / "gold" / table)).to_pyarrow_table().to_pylist()
        for row in rows:
            row[FEATURES] = dict(row[FEATURES])
        return [r for r in rows if not r[ENTITY_ID].startswith("marker")]

    user_rows, item_rows = batch("user_features"), batch("item_features")
    batch_windows = {
        record_key(r)
        for r in [*user_rows, *item_rows]
        if r[FEATURE_GROUP] not in (TOTALS_GROUP, *RECENT_GROUPS)
    }
    streamed = {
        key
        for key in stream_windows(bootstrap, [topics.user_features, topics.item_features])
        if not key[0].startswith("marker")
    }
    assert len(streamed) > 1000
    assert streamed == batch_windows, differences(streamed, batch_windows)

    stream_totals = {
        user: features
        for user, features in latest_totals(bootstrap, topics.user_features).items()
        if not user.startswith("marker")
    }
    batch_totals = {
        r[ENTITY_ID]: r[FEATURES] for r in user_rows if r[FEATURE_GROUP] == TOTALS_GROUP
    }
    assert stream_totals == batch_totals
    assert not any(user.startswith("late-user") for user in [*batch_totals, *stream_totals])

    # The recent groups as of each user's latest event, including the bounds of what they span.
    stream_recent = {
        record_key(record)
        for (user, _), record in latest_records(
            bootstrap, topics.user_features, RECENT_GROUPS
        ).items()
        if not user.startswith("marker")
    }
    batch_recent = {record_key(r) for r in user_rows if r[FEATURE_GROUP] in RECENT_GROUPS}
    assert len(batch_recent) == len(RECENT_GROUPS) * len(batch_totals)
    assert stream_recent == batch_recent
