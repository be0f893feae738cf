"""The Spark twin of the behaviour features equals the plain-Python reference on the same
arrivals: out of order, with re-sends, malformed payloads, an event from the future, and events
the stream declared late in its ledger. Every value is compared exactly."""

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from conftest import LATE, Traffic, bronze_frame, simulate

from rtrec.config import Settings, load_settings
from rtrec.errors import RtrecError
from rtrec.features.definitions import (
    ENTITY_ID,
    EVENTS,
    FEATURE_GROUP,
    FEATURES,
    MINUTE_MS,
    RECENT_GROUPS,
    SESSION_GAP_MS,
    SESSION_GROUP,
    SESSION_LENGTH_MS,
    TOTALS_GROUP,
    USER_WINDOWS,
    WINDOW_END,
    WINDOW_START,
)
from rtrec.features.reference import (
    FeatureRecord,
    item_window_features,
    latest_per_user,
    recent_records,
    session_features,
    user_window_features,
)
from rtrec.features.user_counts import user_counts
from rtrec.schema import EVENT_SCHEMA
from rtrec.schema.events import EVENT_ID, EVENT_TS, USER_ID, VIEW
from rtrec.schema.wire import parsed_row
from rtrec.streaming.behaviour_features import SOURCE

pytestmark = [pytest.mark.component, pytest.mark.spark]


def reference_accepted(traffic: Traffic) -> list[dict[str, Any]]:
    """Valid (as the stream parses them), not late, first occurrence by (partition, offset)."""
    seen: set[str] = set()
    events = []
    for arrival in sorted(traffic.arrivals, key=lambda a: (a.partition, a.offset)):
        error, *values = parsed_row(arrival.payload, arrival.kafka_ts)
        if error is not None or (arrival.partition, arrival.offset) in traffic.late:
            continue
        event = dict(zip(EVENT_SCHEMA.names, values, strict=True))
        if event[EVENT_ID] not in seen:
            seen.add(event[EVENT_ID])
            events.append(event | {"coordinates": (arrival.partition, arrival.offset)})
    return events


def ledger_frame(spark: Any, traffic: Traffic) -> Any:
    """The late-events topic as the Spark Kafka source reads it, plus one record of another
    job pointing at an accepted event (the twin must ignore it)."""
    by_coordinates = {(a.partition, a.offset): a for a in traffic.arrivals}
    records = [
        {"raw": by_coordinates[c].payload.decode(), "reason": "late", "source": SOURCE}
        | {"kafka_partition": c[0], "kafka_offset": c[1]}
        for c in sorted(traffic.late)
    ]
    accepted = reference_accepted(traffic)[0]["coordinates"]
    records.append(
        {"raw": "", "reason": "other rules", "source": "flink:other"}
        | {"kafka_partition": accepted[0], "kafka_offset": accepted[1]}
    )
    return spark.createDataFrame(
        [(json.dumps(r).encode(),) for r in records], "value binary"
    ).transform(_late_ledger)


def _late_ledger(rows: Any) -> Any:
    from rtrec.batch.backfill import late_ledger

    return late_ledger(rows)


def as_records(rows: Iterable[Any]) -> dict[tuple[str, str, int], FeatureRecord]:
    found = {}
    for row in rows:
        record = FeatureRecord(
            row[ENTITY_ID], row[FEATURE_GROUP], row[WINDOW_START], row[WINDOW_END], row[FEATURES]
        )
        assert record.key not in found, f"record twice: {record.key}"
        found[record.key] = record
    return found


def reference_totals(events: list[dict[str, Any]]) -> dict[tuple[str, str, int], FeatureRecord]:
    records = []
    for user, counts in user_counts(events).items():
        times = [e[EVENT_TS] for e in events if e[USER_ID] == user]
        features = {name: float(value) for name, value in counts.items()}
        records.append(FeatureRecord(user, TOTALS_GROUP, min(times), max(times), features))
    return {r.key: r for r in records}


@pytest.fixture(scope="module")
def traffic(spark_settings: Settings) -> Traffic:
    return simulate(spark_settings)


@pytest.fixture(scope="module")
def twin(spark: Any, traffic: Traffic) -> dict[str, Any]:
    """The twin's results, collected once."""
    from rtrec.features import spark as features

    accepted = features.accepted_events(
        bronze_frame(spark, traffic.arrivals), ledger_frame(spark, traffic)
    ).cache()
    return {
        "accepted": accepted.collect(),
        "user_windows": as_records(features.user_window_features(accepted).collect()),
        "sessions": as_records(features.session_features(accepted).collect()),
        "item_windows": as_records(features.item_window_features(accepted).collect()),
        "totals": as_records(features.user_totals(accepted).collect()),
        "recent": as_records(features.recent_features(accepted).collect()),
    }


def test_accepted_events_drop_late_resent_malformed_and_future_events(
    twin: dict[str, Any], traffic: Traffic
) -> None:
    expected = reference_accepted(traffic)
    got = {(r["kafka_partition"], r["kafka_offset"]): r[EVENT_ID] for r in twin["accepted"]}
    assert got == {e["coordinates"]: e[EVENT_ID] for e in expected}
    assert len(got) == 1500 - LATE
    assert not traffic.late & set(got), "late events are excluded"
    assert "from-the-future" not in got.values()
    # Each re-sent event is kept once, at its first (smallest) coordinates.
    assert len(set(got.values())) == len(got)
    first: dict[str, tuple[int, int]] = {}
    for arrival in traffic.arrivals:
        event_id = parsed_row(arrival.payload)[1]
        if event_id in traffic.resent:
            first.setdefault(event_id, (arrival.partition, arrival.offset))
    assert len(first) == len(traffic.resent) > 0
    assert all(got[coordinates] == event_id for event_id, coordinates in first.items())


def test_user_windows_equal_the_reference(twin: dict[str, Any], traffic: Traffic) -> None:
    expected = {r.key: r for r in user_window_features(reference_accepted(traffic))}
    assert twin["user_windows"] == expected
    assert {r.group for r in expected.values()} == {w.group for w in USER_WINDOWS}


def test_sessions_equal_the_reference(twin: dict[str, Any], traffic: Traffic) -> None:
    expected = {r.key: r for r in session_features(reference_accepted(traffic))}
    assert twin["sessions"] == expected


def test_item_windows_equal_the_reference(twin: dict[str, Any], traffic: Traffic) -> None:
    expected = {r.key: r for r in item_window_features(reference_accepted(traffic))}
    assert twin["item_windows"] == expected


def test_recent_groups_equal_the_reference_as_of_each_users_latest_event(
    twin: dict[str, Any], traffic: Traffic
) -> None:
    latest = latest_per_user(recent_records(reference_accepted(traffic)))
    expected = {r.key: r for r in latest.values()}
    assert twin["recent"] == expected
    assert {r.group for r in expected.values()} == set(RECENT_GROUPS)


def test_totals_count_each_accepted_event_once(twin: dict[str, Any], traffic: Traffic) -> None:
    assert twin["totals"] == reference_totals(reference_accepted(traffic))


def test_a_gap_of_exactly_the_session_limit_joins_and_one_more_ms_splits(spark: Any) -> None:
    from rtrec.features import spark as features
    from rtrec.schema.spark import spark_struct

    t = 1_767_225_600_000  # a whole minute: the first event opens a 1-minute slide exactly
    times = [t, t + SESSION_GAP_MS, t + 2 * SESSION_GAP_MS + 1]
    events = [
        dict.fromkeys(EVENT_SCHEMA.names)
        | {"event_id": f"e{n}", "user_id": "u", "session_id": "s", "item_id": f"i{n % 2}"}
        | {"event_type": VIEW, "event_ts": ts}
        for n, ts in enumerate(times)
    ]
    frame = spark.createDataFrame(
        [tuple(e[name] for name in EVENT_SCHEMA.names) for e in events], spark_struct()
    )
    sessions = as_records(features.session_features(frame).collect())
    assert sessions == {r.key: r for r in session_features(events)}
    joined = sessions[("u", SESSION_GROUP, t)]
    assert joined.window_end == t + 2 * SESSION_GAP_MS
    assert joined.features[EVENTS] == 2.0
    assert joined.features[SESSION_LENGTH_MS] == SESSION_GAP_MS
    assert sessions[("u", SESSION_GROUP, times[2])].features[EVENTS] == 1.0
    windows = as_records(features.user_window_features(frame).collect())
    assert windows == {r.key: r for r in user_window_features(events)}
    ten_minutes = USER_WINDOWS[0]
    # An event on a slide boundary is the first instant of the window starting there and is
    # outside the window ending there.
    assert windows[("u", ten_minutes.group, t)].features[EVENTS] == 1.0
    assert ("u", ten_minutes.group, t - ten_minutes.size_ms) not in windows
    assert ("u", ten_minutes.group, t - ten_minutes.size_ms + MINUTE_MS) in windows


def test_the_job_writes_gold_tables_from_one_bronze_version(
    spark: Any, traffic: Traffic, lake_dir: Path
) -> None:
    from delta.tables import DeltaTable

    from rtrec.batch.backfill import (
        BRONZE_VERSION,
        ITEM_FEATURES,
        USER_FEATURES,
        run_backfill_features_job,
    )
    from rtrec.batch.ingest import BRONZE_EVENTS

    settings = load_settings("local", [f"lake.root={lake_dir}"])
    with pytest.raises(RtrecError, match="run the ingest job first"):
        run_backfill_features_job(settings)
    # A small slice with some late events, in two commits so the version read is not just 0.
    arrivals = [
        a
        for a in traffic.arrivals
        if a.partition == 0 and (a.offset < 250 or (a.partition, a.offset) in traffic.late)
    ]
    bronze_path = settings.lake.table_path(*BRONZE_EVENTS)
    for commit in (arrivals[:150], arrivals[150:]):
        bronze_frame(spark, commit).write.format("delta").mode("append").save(bronze_path)
    small = Traffic(arrivals, {c for c in traffic.late if c[0] == 0}, traffic.resent)
    assert small.late

    version = run_backfill_features_job(settings, lambda _, __: ledger_frame(spark, small))

    assert version == 1
    events = reference_accepted(small)
    expected = {
        USER_FEATURES: {
            r.key: r
            for r in [
                *user_window_features(events),
                *session_features(events),
                *latest_per_user(recent_records(events)).values(),
            ]
        }
        | reference_totals(events),
        ITEM_FEATURES: {r.key: r for r in item_window_features(events)},
    }
    for table, records in expected.items():
        path = settings.lake.table_path(*table)
        assert DeltaTable.isDeltaTable(spark, path)
        rows = spark.read.format("delta").load(path).collect()
        assert {row[BRONZE_VERSION] for row in rows} == {version}
        assert as_records(rows) == records
