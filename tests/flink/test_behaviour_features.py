"""The behaviour-features pipeline on a local mini-cluster (parallelism 2) equals the
plain-Python reference on the same events: malformed ones dead-lettered, re-sends counted once,
out-of-order ones (within the watermark delay) windowed like the rest."""

import json
import random
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from rtrec.config import load_settings
from rtrec.config.settings import AbSettings
from rtrec.features.definitions import RECENT_GROUPS, TOTALS_GROUP
from rtrec.features.reference import (
    FeatureRecord,
    item_window_features,
    recent_records,
    session_features,
    user_window_features,
)
from rtrec.features.user_counts import user_counts
from rtrec.schema import encode, validate
from rtrec.scoring.ab import assign_arm
from rtrec.sources import Duplicate, Malformed
from rtrec.sources.simulator import Simulator

pytestmark = [pytest.mark.component, pytest.mark.flink]

JITTER_MS = 2_000  # below the 5 s watermark delay, so no event here is ever late
AB = AbSettings(challenger_share=0.3, salt="test-ab", metrics_window_ms=3_600_000)


def answered(event: dict[str, Any]) -> dict[str, Any]:
    """Two thirds of impressions, clicks and purchases answer a served list (rec_id and the
    version that served it), as the closed loop reports them; re-sends carry the same."""
    if event["event_type"] not in ("impression", "click", "purchase"):
        return event
    if zlib.crc32(event["event_id"].encode()) % 3 == 0:
        return event
    version = (
        "7" if assign_arm(event["user_id"], AB.challenger_share, AB.salt) == "challenger" else "6"
    )
    return {**event, "rec_id": f"r-{event['event_id']}", "model_version": version}


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from rtrec.streaming.behaviour_features import build_behaviour_features_pipeline
    from rtrec.streaming.environment import create_table_env
    from rtrec.streaming.kafka import raw_file_ddl

    base = tmp_path_factory.mktemp("features")
    settings = load_settings("local", [f"flink.checkpoint_dir={base / 'checkpoints'}"])
    assert settings.flink.parallelism == 2
    simulator = Simulator(settings.simulator, events=1500, duplicates=40, malformed=25, days=2)
    records = list(simulator.stream())
    # Shuffle arrival order within small event-time buckets: out of order, never late.
    rng = random.Random(3)
    keyed = [
        (
            r.ts
            if isinstance(r, Malformed)
            else (r.event if isinstance(r, Duplicate) else r)["event_ts"]
        )
        for r in records
    ]
    order = sorted(range(len(records)), key=lambda n: (keyed[n] // JITTER_MS, rng.random()))
    lines = []
    for n in order:
        record = records[n]
        if isinstance(record, Malformed):
            lines.append(record.payload)
        else:
            lines.append(
                encode(answered(record.event if isinstance(record, Duplicate) else record))
            )
    (base / "events.txt").write_bytes(b"\n".join(lines) + b"\n")

    t_env = create_table_env(settings, "rtrec-test-features")
    t_env.execute_sql(raw_file_ddl("raw_file", base / "events.txt"))
    tables = build_behaviour_features_pipeline(t_env, "raw_file", AB)
    out: dict[str, Any] = {"lines": lines}
    for name in ("dead_letters", "user_totals", "user_features", "item_features", "ab_metrics"):
        with getattr(tables, name).execute().collect() as rows:
            out[name] = [(row.get_row_kind().name, tuple(row)) for row in rows]
    return out


def accepted(lines: list[bytes]) -> list[dict[str, Any]]:
    """Valid events in arrival order, first occurrence of each event_id."""
    seen: set[str] = set()
    events = []
    for line in lines:
        record = validate(line).record
        if record is not None and record["event_id"] not in seen:
            seen.add(record["event_id"])
            events.append(record)
    return events


def records(rows: list[tuple[str, tuple[Any, ...]]]) -> list[FeatureRecord]:
    """Append-only feature records."""
    found = []
    for kind, (entity, group, start, end, features) in rows:
        assert kind == "INSERT", "window and recent records are final: no updates"
        found.append(FeatureRecord(entity, group, start, end, dict(features)))
    return found


def windows(rows: list[tuple[str, tuple[Any, ...]]]) -> dict[tuple[str, str, int], FeatureRecord]:
    """Window records by (entity, group, window start)."""
    found = {}
    for record in records(rows):
        if record.group in RECENT_GROUPS:
            continue
        assert record.key not in found, f"window emitted twice: {record.key}"
        found[record.key] = record
    return found


def test_malformed_payloads_are_dead_lettered_with_the_validator_reason(
    results: dict[str, Any],
) -> None:
    dead = {row[0]: row[1] for _, row in results["dead_letters"]}
    malformed = [line.decode() for line in results["lines"] if not validate(line).ok]
    assert sorted(dead) == sorted(malformed) and len(malformed) == 25
    assert all(reason == validate(raw).error for raw, reason in dead.items())


def test_user_windows_and_sessions_equal_the_reference(results: dict[str, Any]) -> None:
    events = accepted(results["lines"])
    expected = {r.key: r for r in [*user_window_features(events), *session_features(events)]}
    got = windows(results["user_features"])
    assert set(got) == set(expected)
    assert got == expected


def test_recent_items_categories_and_affinity_equal_the_reference(
    results: dict[str, Any],
) -> None:
    def by_event(found: list[FeatureRecord]) -> dict[tuple[str, str, int], FeatureRecord]:
        # One record per group and event; the simulator gives no user two events at one time.
        keyed = {(r.entity_id, r.group, r.window_end): r for r in found}
        assert len(keyed) == len(found)
        return keyed

    got = by_event([r for r in records(results["user_features"]) if r.group in RECENT_GROUPS])
    expected = by_event(recent_records(accepted(results["lines"])))
    assert len(got) > 1000 and {r.group for r in got.values()} == set(RECENT_GROUPS)
    assert got == expected


def test_item_windows_equal_the_reference(results: dict[str, Any]) -> None:
    events = accepted(results["lines"])
    expected = {r.key: r for r in item_window_features(events)}
    assert windows(results["item_features"]) == expected


def test_totals_count_each_event_once(results: dict[str, Any]) -> None:
    latest: dict[str, dict[str, float]] = {}
    for kind, (entity, group, _, _, features) in results["user_totals"]:
        assert group == TOTALS_GROUP
        if kind in ("INSERT", "UPDATE_AFTER"):
            latest[entity] = dict(features)
    expected = user_counts(accepted(results["lines"]))
    assert latest == {u: {k: float(v) for k, v in row.items()} for u, row in expected.items()}
    assert json.dumps(latest)  # plain numbers only


def test_every_group_shares_one_deduplication(tmp_path: Path) -> None:
    """One keyed deduplication state and shuffle, however many groups read the events."""
    from rtrec.schema.flink import create_table_ddl
    from rtrec.streaming.behaviour_features import (
        FEATURE_COLUMNS,
        build_behaviour_features_pipeline,
    )
    from rtrec.streaming.environment import create_table_env
    from rtrec.streaming.kafka import raw_file_ddl

    settings = load_settings("local", [f"flink.checkpoint_dir={tmp_path}"])
    t_env = create_table_env(settings, "rtrec-test-plan")
    t_env.execute_sql(raw_file_ddl("raw_file", tmp_path / "events.txt"))
    tables = build_behaviour_features_pipeline(t_env, "raw_file", AB)
    statements = t_env.create_statement_set()
    for name in ("user_totals", "user_features", "item_features"):
        t_env.execute_sql(create_table_ddl(name, FEATURE_COLUMNS, {"connector": "blackhole"}))
        statements.add_insert(name, getattr(tables, name))
    plan = statements.explain()
    executed = plan[plan.index("== Optimized Execution Plan ==") :]
    assert executed.count("Deduplicate(") == 1
    assert "order=[PROCTIME]" in executed


def test_online_ab_metrics_count_answered_lists_per_window_version_and_arm(
    results: dict[str, Any],
) -> None:
    expected: Counter[tuple[int, str, str, str]] = Counter()
    for event in accepted(results["lines"]):
        if event.get("rec_id") is None:
            continue
        start = event["event_ts"] // AB.metrics_window_ms * AB.metrics_window_ms
        arm = assign_arm(event["user_id"], AB.challenger_share, AB.salt)
        expected[start, event["model_version"], arm, event["event_type"]] += 1
    got = {}
    for kind, row in results["ab_metrics"]:
        assert kind == "INSERT"  # a window's figures are final
        start, end, version, arm, impressions, clicks, purchases, ctr, conversion = row
        assert end - start == AB.metrics_window_ms and (start, version, arm) not in got
        got[start, version, arm] = (impressions, clicks, purchases)
        if impressions:
            assert ctr == pytest.approx(clicks / impressions)
            assert conversion == pytest.approx(purchases / impressions)
        else:
            assert ctr is None and conversion is None
    keys = {(start, version, arm) for start, version, arm, _ in expected}
    assert got == {
        key: tuple(expected[(*key, kind)] for kind in ("impression", "click", "purchase"))
        for key in keys
    }
    # Both arms, each only with its own version (the split is the scoring job's).
    assert {(version, arm) for _, version, arm in got} == {("6", "champion"), ("7", "challenger")}
