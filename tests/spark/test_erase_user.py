"""Erasing a user (rtrec.batch.erase) from a real lake: bronze written in several commits,
silver and gold by the curate job, the gold feature tables by the backfill job. After the
erasure the user is in no table's current version, in no version time travel can still read
(the others fail to read), and in no data file; everybody else's rows are untouched."""

from __future__ import annotations

import json
import os
import re
import runpy
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from conftest import Arrival, bronze_frame, simulate

from rtrec.batch.erase import (
    ITEM_TABLES,
    USER_TABLES,
    TableErasure,
    UserTable,
    delete_user_rows,
    referencing_versions,
    retry_on_conflict,
    run_erase_user_job,
)
from rtrec.batch.ingest import BRONZE_EVENTS, EVENT_DATE
from rtrec.config import Settings, load_settings
from rtrec.errors import RtrecError
from rtrec.schema import validate
from rtrec.schema.events import USER_ID

pytestmark = [pytest.mark.component, pytest.mark.spark]

# Delta's guard against vacuuming below a table's deletedFileRetentionDuration (7 days): the
# tests vacuum with retention 0, as only a run that no writer overlaps may.
RETENTION_CHECK = "spark.databricks.delta.retentionDurationCheck.enabled"
BRONZE = next(t for t in USER_TABLES if t.layer_table == BRONZE_EVENTS)
USER_NAMES = {t.name for t in USER_TABLES}
ITEM_NAMES = {".".join(t) for t in ITEM_TABLES}


@dataclass(frozen=True)
class Lake:
    settings: Settings
    users: list[str]  # the busiest users first
    # Per user table before the erasure: the victim's rows and everybody else's.
    victim_rows: dict[str, int]
    other_rows: dict[str, int]
    latest: dict[str, int]  # each user table's latest version before the erasure


@dataclass(frozen=True)
class Erased:
    lake: Lake
    results: dict[str, TableErasure]

    @property
    def victim(self) -> str:
        return self.lake.users[0]


def path_of(settings: Settings, table: UserTable) -> str:
    return settings.lake.table_path(*table.layer_table)


def is_users(table: UserTable, row: Any, user: str) -> bool:
    """``UserTable.rows_of`` in Python: the user's id, or their id in an unparsed payload."""
    if row[table.user_column] is not None:
        return bool(row[table.user_column] == user)
    payload = row[table.payload_column] if table.payload_column else None
    return payload is not None and json.dumps(user) in payload


def key_rows(spark: Any, table: UserTable, path: str, version: int | None = None) -> list[Any]:
    """Every row's user columns, read from every data file of the version (a plain count
    could be answered from the log's statistics without opening a file)."""
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    columns = [table.user_column] + ([table.payload_column] if table.payload_column else [])
    return reader.load(path).select(*columns).collect()


def latest_versions(spark: Any, settings: Settings) -> dict[str, int]:
    from rtrec.batch.delta import current_version

    return {t.name: current_version(spark, path_of(settings, t), "a test") for t in USER_TABLES}


def busiest_users(arrivals: list[Arrival]) -> list[str]:
    """The users of the valid events, most events first."""
    records = (validate(a.payload).record for a in arrivals)
    events = Counter(record[USER_ID] for record in records if record is not None)
    return [user for user, _ in events.most_common()]


def with_retention_check_off(spark: Any, settings: Settings, user: str) -> list[TableErasure]:
    spark.conf.set(RETENTION_CHECK, "false")
    try:
        return run_erase_user_job(settings, user)
    finally:
        spark.conf.unset(RETENTION_CHECK)


@pytest.fixture(scope="module")
def lake(spark: Any, spark_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Lake:
    """Bronze in three commits with curate runs after the first and the last, the backfill
    after the last, and deletion vectors switched on in bronze before the erasure."""
    from delta.tables import DeltaTable

    from rtrec.batch.backfill import run_backfill_features_job
    from rtrec.batch.curate import run_curate_job
    from rtrec.batch.ingest import KAFKA_OFFSET, KAFKA_PARTITION

    root = tmp_path_factory.mktemp("erasure")
    overrides = [f"lake.root={root}", "lake.vacuum_retention_hours=0"]
    settings = load_settings("local", overrides)
    arrivals = simulate(spark_settings).arrivals
    users = busiest_users(arrivals)
    # Records that fail to parse, so bronze keeps them without a user id: one names the victim
    # in its payload, one somebody else.
    ts = arrivals[-1].kafka_ts
    unparsed = [
        Arrival(json.dumps({USER_ID: user, "event_type": "wishlist"}).encode(), 0, 10**6 + n, ts)
        for n, user in enumerate((users[0], users[2]))
    ]
    bronze_path = settings.lake.table_path(*BRONZE_EVENTS)
    third = len(arrivals) // 3
    chunks = [arrivals[:third], arrivals[third : 2 * third], arrivals[2 * third :] + unparsed]
    for n, chunk in enumerate(chunks):
        bronze_frame(spark, chunk).write.format("delta").mode("append").partitionBy(
            EVENT_DATE
        ).save(bronze_path)
        if n != 1:
            run_curate_job(settings)

    def no_late_events(session: Any, _: Settings) -> Any:
        return session.createDataFrame([], f"{KAFKA_PARTITION} int, {KAFKA_OFFSET} long")

    run_backfill_features_job(settings, no_late_events)
    dv = "'delta.enableDeletionVectors' = true"
    spark.sql(f"ALTER TABLE delta.`{bronze_path}` SET TBLPROPERTIES ({dv})")
    features = DeltaTable.forPath(spark, bronze_path).detail().first()["tableFeatures"]
    assert "deletionVectors" in features

    victim_rows, other_rows = {}, {}
    for table in USER_TABLES:
        rows = key_rows(spark, table, path_of(settings, table))
        victim_rows[table.name] = sum(is_users(table, row, users[0]) for row in rows)
        other_rows[table.name] = len(rows) - victim_rows[table.name]
    return Lake(settings, users, victim_rows, other_rows, latest_versions(spark, settings))


@pytest.fixture(scope="module")
def erased(spark: Any, lake: Lake) -> Erased:
    results = with_retention_check_off(spark, lake.settings, lake.users[0])
    return Erased(lake, {result.table: result for result in results})


def test_the_lake_holds_the_victim_in_every_user_table_first(spark: Any, lake: Lake) -> None:
    # Not vacuous: every user table has the victim's rows, bronze one that failed to parse,
    # and there is history for time travel to reach.
    assert all(count > 0 for count in lake.victim_rows.values()), lake.victim_rows
    bronze = key_rows(spark, BRONZE, path_of(lake.settings, BRONZE))
    assert any(r[USER_ID] is None and is_users(BRONZE, r, lake.users[0]) for r in bronze)
    assert lake.latest["bronze.events"] >= 3 and lake.latest["silver.events"] >= 3
    assert lake.latest["gold.user_sequences"] >= 1


def test_every_lake_table_is_erased_or_kept_on_purpose(spark: Any, lake: Lake) -> None:
    """A new table in the lake fails this until it joins USER_TABLES or ITEM_TABLES."""
    root = Path(lake.settings.lake.root)
    tables = {f"{d.parent.name}.{d.name}" for d in root.glob("*/*") if (d / "_delta_log").is_dir()}
    assert tables == USER_NAMES | ITEM_NAMES
    for name in ITEM_NAMES:
        columns = spark.read.format("delta").load(str(root.joinpath(*name.split(".")))).columns
        assert USER_ID not in columns, name


def test_the_user_is_gone_from_every_current_version_and_nobody_else_is_touched(
    spark: Any, erased: Erased
) -> None:
    lake = erased.lake
    assert set(erased.results) == USER_NAMES
    for table in USER_TABLES:
        result = erased.results[table.name]
        assert result.rows_deleted == lake.victim_rows[table.name], result
        rows = key_rows(spark, table, path_of(lake.settings, table))
        assert not any(is_users(table, row, erased.victim) for row in rows), table.name
        assert len(rows) == lake.other_rows[table.name], table.name


def test_every_version_time_travel_reaches_lacks_the_user_or_cannot_be_read(
    spark: Any, erased: Erased
) -> None:
    from delta.tables import DeltaTable

    for table in USER_TABLES:
        path = path_of(erased.lake.settings, table)
        history = [r.version for r in DeltaTable.forPath(spark, path).history().collect()]
        assert sorted(history) == list(range(max(history) + 1))
        unreadable = []
        for version in history:
            try:
                rows = key_rows(spark, table, path, version)
            except Exception as exc:
                assert "does not exist" in str(exc) or "FileNotFound" in str(exc), exc
                unreadable.append(version)
            else:
                assert not any(is_users(table, row, erased.victim) for row in rows), version
        # Every version that held the user lost its files, and the job counted exactly those.
        result = erased.results[table.name]
        assert sorted(unreadable) == list(result.unreadable_versions), table.name
        assert unreadable and result.files_vacuumed > 0, table.name


def test_no_data_file_holds_the_user_and_the_erasure_logs_no_id(spark: Any, erased: Erased) -> None:
    from delta.tables import DeltaTable

    # Bronze has deletion vectors: its MERGEs only marked the rows, and the purge rewrote the
    # files, without which the rows would still sit in files the current version reads.
    bronze = DeltaTable.forPath(spark, path_of(erased.lake.settings, BRONZE)).history()
    operations = {r.operation: r.operationMetrics for r in bronze.collect()}
    assert int(operations["REORG"]["numDeletionVectorsRemoved"]) > 0, operations
    victim = json.dumps(erased.victim)
    for table in USER_TABLES:
        root = Path(path_of(erased.lake.settings, table))
        files = [f for f in root.rglob("*.parquet") if "_delta_log" not in f.parts]
        assert files, table.name
        columns = [table.user_column] + ([table.payload_column] if table.payload_column else [])
        for file in files:
            rows = pq.read_table(file, columns=columns).to_pylist()
            assert not any(is_users(table, row, erased.victim) for row in rows), file
        # Commits before the erasure keep per-file min/max statistics (the id may be one) until
        # log cleanup; the erasure's own commits never write it: no DELETE predicate.
        since = erased.lake.latest[table.name]
        for commit in (root / "_delta_log").glob("*.json"):
            if int(commit.name.split(".")[0]) > since:
                assert victim not in commit.read_text(), commit


def test_erasing_again_changes_nothing(spark: Any, erased: Erased) -> None:
    lake = erased.lake
    versions = latest_versions(spark, lake.settings)
    again = with_retention_check_off(spark, lake.settings, erased.victim)
    assert [(r.rows_deleted, r.files_vacuumed, r.unreadable_versions) for r in again] == [
        (0, 0, ())
    ] * len(USER_TABLES)
    assert latest_versions(spark, lake.settings) == versions  # not even an empty commit


def test_the_job_under_spark_submit(spark: Any, spark_settings: Settings, tmp_path: Path) -> None:
    """The job file end to end, on a lake that has only bronze: a line per table, exit 0."""
    overrides = [f"lake.root={tmp_path / 'lake'}", "lake.vacuum_retention_hours=0"]
    settings = load_settings("local", overrides)
    path = settings.lake.table_path(*BRONZE_EVENTS)
    arrivals = simulate(spark_settings).arrivals[:400]
    for chunk in (arrivals[:200], arrivals[200:]):
        frame = bronze_frame(spark, chunk)
        frame.write.format("delta").mode("append").partitionBy(EVENT_DATE).save(path)
    user = busiest_users(arrivals)[0]
    # spark-submit of this environment, which finds its Spark home through the python on PATH.
    bin_dir = Path(sys.executable).parent
    command = [
        str(bin_dir / "spark-submit"),
        "--master",
        "local[2]",
        "--conf",
        f"{RETENTION_CHECK}=false",
        str(settings.root / "jobs" / "spark" / "erase_user.py"),
        "--env",
        "local",
        *(arg for item in overrides for arg in ("--set", item)),
        "--user-id",
        user,
    ]
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = {
        line.split(":", 1)[0]: line
        for line in done.stdout.splitlines()
        if line.split(":", 1)[0] in USER_NAMES
    }
    assert set(lines) == USER_NAMES, done.stdout
    deleted = re.match(
        r"bronze\.events: (\d+) rows? deleted; .* (\d+) versions? no", lines[BRONZE.name]
    )
    assert deleted and int(deleted.group(1)) > 0 and int(deleted.group(2)) > 0, lines
    assert all(lines[name].endswith("no table yet") for name in USER_NAMES - {BRONZE.name})
    assert not any(is_users(BRONZE, row, user) for row in key_rows(spark, BRONZE, path))


def test_an_empty_user_id_is_one_line_and_exit_code_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], spark_settings: Settings
) -> None:
    job = spark_settings.root / "jobs" / "spark" / "erase_user.py"
    monkeypatch.setattr(sys, "argv", [job.name, "--env", "local", "--user-id", " "])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(str(job), run_name="__main__")
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("erase_user.py: error: the user id is empty") and "\n" not in err


def test_a_retention_delta_refuses_fails_readably_after_deleting(
    spark: Any, spark_settings: Settings, tmp_path: Path
) -> None:
    settings = load_settings("local", [f"lake.root={tmp_path}", "lake.vacuum_retention_hours=1"])
    path = settings.lake.table_path(*BRONZE_EVENTS)
    arrivals = simulate(spark_settings).arrivals[:200]
    bronze_frame(spark, arrivals).write.format("delta").save(path)
    user = busiest_users(arrivals)[0]
    with pytest.raises(RtrecError, match=r"refuses to vacuum with lake\.vacuum_retention_hours=1,"):
        run_erase_user_job(settings, user)
    assert not any(is_users(BRONZE, row, user) for row in key_rows(spark, BRONZE, path))


def test_deletes_commit_beside_concurrent_appends(
    spark: Any, spark_settings: Settings, tmp_path: Path
) -> None:
    """A writer appending to the very partitions being erased, as the streaming ingest does:
    every commit that loses to an append is retried, and no appended row is lost. The writer
    stops after fewer appends than the attempts a commit gets, so the erasure must finish."""
    path = str(tmp_path / "bronze")
    arrivals = simulate(spark_settings).arrivals
    bronze_frame(spark, arrivals[:600]).write.format("delta").partitionBy(EVENT_DATE).save(path)
    user = busiest_users(arrivals[:600])[0]
    others = [a for a in arrivals[600:] if (r := validate(a.payload).record) and r[USER_ID] != user]
    appends, started = 4, threading.Event()
    batches = [others[n * 50 : (n + 1) * 50] for n in range(appends)]

    def append() -> None:
        started.set()
        for batch in batches:
            bronze_frame(spark, batch).write.format("delta").mode("append").save(path)
            time.sleep(0.2)

    writer = threading.Thread(target=append)
    writer.start()
    started.wait()
    result = delete_user_rows(spark, BRONZE, path, user, attempts=appends + 1, backoff_s=0.1)
    writer.join()
    rows = key_rows(spark, BRONZE, path)
    assert result.rows_deleted > 0
    assert not any(is_users(BRONZE, row, user) for row in rows)
    assert len(rows) == 600 - result.rows_deleted + sum(len(b) for b in batches)


def test_conflicts_are_retried_a_bounded_number_of_times() -> None:
    from delta.exceptions import ConcurrentAppendException

    outcomes: list[Exception | None] = [ConcurrentAppendException("lost to an append")] * 2
    outcomes.append(None)

    def flaky() -> str:
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome
        return "done"

    assert retry_on_conflict(flaky, "t", attempts=3, backoff_s=0) == ("done", 2)
    outcomes[:] = [ConcurrentAppendException("lost to an append")] * 3
    with pytest.raises(RtrecError, match="won the commit 3 times in a row"):
        retry_on_conflict(flaky, "t", attempts=3, backoff_s=0)
    outcomes[:] = [ValueError("not a conflict")]
    with pytest.raises(ValueError):
        retry_on_conflict(flaky, "t", attempts=3, backoff_s=0)


def test_referencing_versions() -> None:
    # a added at 0 and removed at 2; b predates the log and goes at 1; c is re-added with a
    # new deletion vector at 3 (stays) and removed at 4; nothing of theirs is left at 5.
    commits: dict[int, list[tuple[str, bool]]] = {
        0: [("a", True)],
        1: [("b", False)],
        2: [("a", False), ("c", True)],
        3: [("c", False), ("c", True)],
        4: [("c", False)],
        5: [],
    }
    assert referencing_versions(commits) == (0, 1, 2, 3)
    assert referencing_versions({0: [], 1: []}) == ()
