"""Pure pieces: the user-count feature definition, popularity ranking, Spark jar selection."""

from pathlib import Path

import pytest

from rtrec.batch.runtime import artifact_name, extra_jars
from rtrec.features.definitions import EVENTS, type_count
from rtrec.features.user_counts import LAST_EVENT_TS, user_counts
from rtrec.registry.popularity import most_popular

pytestmark = pytest.mark.unit


def event(event_id: str, user: str, kind: str, ts: int, item: str = "i") -> dict[str, object]:
    return {
        "event_id": event_id,
        "user_id": user,
        "event_type": kind,
        "event_ts": ts,
        "item_id": item,
    }


def test_user_counts_count_each_event_id_once() -> None:
    events = [
        event("a", "u1", "view", 10),
        event("b", "u1", "purchase", 30),
        event("a", "u1", "view", 10),  # a re-send
        event("c", "u2", "click", 20),
    ]
    counts = user_counts(events)
    assert counts["u1"][EVENTS] == 2
    assert counts["u1"][type_count("view")] == 1
    assert counts["u1"][type_count("purchase")] == 1
    assert counts["u1"][type_count("click")] == 0
    assert counts["u1"][LAST_EVENT_TS] == 30
    assert counts["u2"] == {
        **{k: 0 for k in counts["u2"]},
        EVENTS: 1,
        "click_count": 1,
        LAST_EVENT_TS: 20,
    }


def test_most_popular_orders_by_count_then_id() -> None:
    events = [event(str(n), "u", "view", n, item) for n, item in enumerate("bcabcb")]
    assert most_popular(events) == ["b", "c", "a"]
    assert most_popular(events, limit=1) == ["b"]


def test_artifact_name_strips_versions_and_classifiers() -> None:
    assert artifact_name(Path("jackson-core-2.13.5.jar")) == "jackson-core"
    assert artifact_name(Path("delta-spark_4.2_2.13-4.4.0.jar")) == "delta-spark_4.2_2.13"
    assert artifact_name(Path("zstd-jni-1.5.7-3.jar")) == "zstd-jni"
    assert artifact_name(Path("spark-sql-kafka-0-10_2.13-4.2.0.jar")) == "spark-sql-kafka-0-10_2.13"


def test_extra_jars_leave_out_what_spark_already_ships(tmp_path: Path) -> None:
    resolved, bundled = tmp_path / "resolved", tmp_path / "spark"
    resolved.mkdir()
    bundled.mkdir()
    for name in (
        "jackson-core-2.13.5.jar",
        "delta-spark_4.2_2.13-4.4.0.jar",
        "kafka-clients-3.9.2.jar",
    ):
        (resolved / name).touch()
    (bundled / "jackson-core-2.21.2.jar").touch()
    assert [j.name for j in extra_jars(resolved, bundled)] == [
        "delta-spark_4.2_2.13-4.4.0.jar",
        "kafka-clients-3.9.2.jar",
    ]
