"""Erasure of one user from every lake table that holds rows about users (docs/erasure.md).

Two phases, so that a vacuum Delta refuses never leaves the user in a table's current version:

1. **Delete**, table by table: ``MERGE ... WHEN MATCHED DELETE`` with the user id in a one-row
   source. A plain DELETE would write its predicate, the id itself, into the commit that
   ``DESCRIBE HISTORY`` shows. A partitioned table is erased one partition holding the user at
   a time: open-source Delta is Serializable, so an append to a partition a delete has read
   (the streaming ingest commits every few seconds) makes that delete fail at commit, and each
   small commit then retries one partition, not the whole table. With deletion vectors a
   delete only marks rows, so the files carrying vectors are then rewritten (REORG ... PURGE).
2. **Vacuum** with ``lake.vacuum_retention_hours``: files removed longer ago than that are
   deleted, and every version still referring to one of them can no longer be read.

Erasing a user who has no rows (again, or never) changes nothing and succeeds.
"""

from __future__ import annotations

import functools
import json
import logging
import operator
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

from rtrec.batch.backfill import CF_SCORES, ITEM_FEATURES, ITEM_NEIGHBOURS, USER_FEATURES
from rtrec.batch.curate import (
    BOUGHT_TOGETHER,
    ITEM_CATALOGUE,
    SILVER_EVENTS,
    TRAINING_EXAMPLES,
    USER_SEQUENCES,
)
from rtrec.batch.ingest import BRONZE_EVENTS, PAYLOAD
from rtrec.config import Settings
from rtrec.errors import RtrecError
from rtrec.features.definitions import ENTITY_ID
from rtrec.schema.events import USER_ID

JOB = "erase-user"
# A conflicting commit is retried this many times in all, after a growing, jittered pause.
CONFLICT_ATTEMPTS = 5
CONFLICT_BACKOFF_S = 1.0
ERASED, ERASED_JSON = "erased_user_id", "erased_user_json"  # the MERGE source's columns
TARGET, SOURCE = "t", "e"
DELETION_VECTORS = "deletionVectors"
RETENTION_TOO_SHORT = "DELTA_VACUUM_RETENTION_PERIOD_TOO_SHORT"
# Delta 4 ignores a VACUUM's RETAIN unless it is 0, and applies each table's
# delta.deletedFileRetentionDuration instead. The job turns this off for its VACUUM so that the
# configured retention applies; Delta still refuses one below that table property unless its
# retentionDurationCheck is disabled as well.
IGNORE_RETAIN = "spark.databricks.delta.vacuum.retentionWindowIgnore.enabled"
COMMIT_FILE = r"^(\d{20})\.json$"  # a commit in _delta_log, named by its version

LOG = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class UserTable:
    """A lake table whose rows are about individual users."""

    layer_table: tuple[str, str]
    user_column: str
    # A column holding each record as received, for rows that failed to parse: they have no
    # user id, but their payload may still name the user.
    payload_column: str | None = None

    @property
    def name(self) -> str:
        return ".".join(self.layer_table)

    def rows_of(self, user: Any, user_json: Any, alias: str = "") -> Any:
        """The condition selecting the user's rows: ``user`` in the user column or, in a row
        that failed to parse, ``user_json`` (the id as a JSON string) anywhere in its payload.
        Unparsed records are kept only to be replayed, so erring towards deleting one that
        merely mentions the id is the safe side."""
        from pyspark.sql import functions as F

        prefix = f"{alias}." if alias else ""
        key = F.col(prefix + self.user_column)
        match = key == user
        if self.payload_column is not None:
            match = match | (key.isNull() & F.col(prefix + self.payload_column).contains(user_json))
        return match


USER_TABLES: tuple[UserTable, ...] = (
    UserTable(BRONZE_EVENTS, USER_ID, payload_column=PAYLOAD),
    UserTable(SILVER_EVENTS, USER_ID),
    UserTable(USER_SEQUENCES, USER_ID),
    UserTable(TRAINING_EXAMPLES, USER_ID),
    UserTable(USER_FEATURES, ENTITY_ID),  # every group in it (totals, windows, ...) is per user
    UserTable(CF_SCORES, USER_ID),
)
# Per-item aggregates over all users' events (counts, first and last seen, latest price,
# similarities): no row is about a person, so erasure leaves them; the next curate or backfill
# run rebuilds them from the erased silver and bronze.
ITEM_TABLES: tuple[tuple[str, str], ...] = (
    ITEM_CATALOGUE,
    ITEM_FEATURES,
    ITEM_NEIGHBOURS,
    BOUGHT_TOGETHER,
)


@dataclass(frozen=True)
class TableErasure:
    """What erasing one user did to one table."""

    table: str
    rows_deleted: int
    conflicts: int  # commits that lost to a concurrent writer and were retried
    files_vacuumed: int = 0
    unreadable_versions: tuple[int, ...] = ()  # versions whose files the vacuum deleted

    def summary(self) -> str:
        retried = f" ({counted(self.conflicts, 'conflicting commit')} retried)"
        return (
            f"{self.table}: {counted(self.rows_deleted, 'row')} deleted"
            f"{retried if self.conflicts else ''}; vacuum deleted "
            f"{counted(self.files_vacuumed, 'file')}, "
            f"{counted(len(self.unreadable_versions), 'version')} no longer readable"
        )


def counted(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def run_erase_user_job(
    settings: Settings, user_id: str, report: Path | None = None
) -> list[TableErasure]:
    """Erase ``user_id`` (as the lake stores it) from every user table, then vacuum them;
    prints one line per table and returns what happened to each user table. ``report`` (None:
    none) receives the same as JSON (``erasure_report``), for ``rtrec privacy forget``'s
    audit record."""
    from delta.tables import DeltaTable

    from rtrec.batch.session import create_spark_session

    if not user_id.strip():
        raise RtrecError("the user id is empty: pass the id of the user to erase (--user-id)")
    spark = create_spark_session(settings, JOB)
    lake = settings.lake
    present = []
    for table in USER_TABLES:
        if DeltaTable.isDeltaTable(spark, lake.table_path(*table.layer_table)):
            present.append(table)
        else:
            print(f"{table.name}: no table yet")
    deleted = [
        delete_user_rows(spark, table, lake.table_path(*table.layer_table), user_id)
        for table in present
    ]
    erased = []
    for table, deletion in zip(present, deleted, strict=True):
        files, versions = vacuum(
            spark, lake.table_path(*table.layer_table), lake.vacuum_retention_hours, table.name
        )
        erased.append(replace(deletion, files_vacuumed=files, unreadable_versions=versions))
        print(erased[-1].summary())
    for layer_table in ITEM_TABLES:
        if DeltaTable.isDeltaTable(spark, lake.table_path(*layer_table)):
            print(f"{'.'.join(layer_table)}: kept (per-item aggregates, no rows about a user)")
    if lake.vacuum_retention_hours and any(e.rows_deleted for e in erased):
        until = datetime.now(UTC) + timedelta(hours=lake.vacuum_retention_hours)
        print(
            f"the files that held the deleted rows stay for time travel until "
            f"{until:%Y-%m-%d %H:%M} UTC (lake.vacuum_retention_hours="
            f"{lake.vacuum_retention_hours}): run erase_user again after that to delete them"
        )
    if report is not None:
        report.write_text(json.dumps(erasure_report(erased)))
    return erased


def erasure_report(erased: Sequence[TableErasure]) -> list[dict[str, Any]]:
    """What the erasure did per table, as plain JSON values (no user id in them)."""
    return [
        {
            "table": e.table,
            "rows_deleted": e.rows_deleted,
            "files_vacuumed": e.files_vacuumed,
            "unreadable_versions": list(e.unreadable_versions),
        }
        for e in erased
    ]


def delete_user_rows(
    spark: Any,
    table: UserTable,
    path: str,
    user_id: str,
    attempts: int = CONFLICT_ATTEMPTS,
    backoff_s: float = CONFLICT_BACKOFF_S,
) -> TableErasure:
    """Delete the user's rows from the current version of the table at ``path``, one
    partition at a time, retrying commits that conflict; then purge deletion vectors."""
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    detail = DeltaTable.forPath(spark, path).detail().first()
    source = spark.createDataFrame(
        [(user_id, json.dumps(user_id))], f"{ERASED} string, {ERASED_JSON} string"
    )
    condition = table.rows_of(
        F.col(f"{SOURCE}.{ERASED}"), F.col(f"{SOURCE}.{ERASED_JSON}"), alias=TARGET
    )

    def merge(scope: Any) -> int:
        # A fresh DeltaTable per attempt: each one reads the latest version.
        result = (
            DeltaTable.forPath(spark, path)
            .alias(TARGET)
            .merge(source.alias(SOURCE), condition & scope)
            .whenMatchedDelete()
            .execute()
        )
        return int(result.first()["num_deleted_rows"])

    rows = conflicts = 0
    for scope in partitions_holding(spark, table, path, list(detail["partitionColumns"]), user_id):
        deleted, retried = retry_on_conflict(
            functools.partial(merge, scope), table.name, attempts, backoff_s
        )
        rows, conflicts = rows + deleted, conflicts + retried
    if DELETION_VECTORS in detail["tableFeatures"]:
        purge = f"REORG TABLE {sql_table(path)} APPLY (PURGE)"
        _, retried = retry_on_conflict(
            lambda: spark.sql(purge).collect(), table.name, attempts, backoff_s
        )
        conflicts += retried
    return TableErasure(table.name, rows, conflicts)


def partitions_holding(
    spark: Any, table: UserTable, path: str, partition_columns: Sequence[str], user_id: str
) -> list[Any]:
    """One MERGE condition per partition that holds rows of the user (found by a read, which
    commits nothing); a table without partitions is one unconditional scope."""
    from pyspark.sql import functions as F

    if not partition_columns:
        return [F.lit(True)]
    rows = (
        spark.read.format("delta")
        .load(path)
        .where(table.rows_of(F.lit(user_id), F.lit(json.dumps(user_id))))
        .select(*partition_columns)
        .distinct()
        .collect()
    )
    # Literal partition values keep the condition on the target alone, which Delta uses to
    # read (and to check for conflicts) only that partition.
    return [
        functools.reduce(
            operator.and_,
            (F.col(f"{TARGET}.{c}").eqNullSafe(F.lit(row[c])) for c in partition_columns),
        )
        for row in rows
    ]


def retry_on_conflict(
    action: Callable[[], T],
    what: str,
    attempts: int = CONFLICT_ATTEMPTS,
    backoff_s: float = CONFLICT_BACKOFF_S,
) -> tuple[T, int]:
    """``action()``'s result and how many of its commits lost to a concurrent writer first.
    Every attempt reads the table afresh, so a retried delete also covers what the winner
    wrote; after ``attempts`` losses it gives up with a readable error."""
    from delta import exceptions

    conflicts = tuple(
        getattr(exceptions, name)
        for name in (
            "ConcurrentAppendException",
            "ConcurrentDeleteDeleteException",
            "ConcurrentDeleteReadException",
            "ConcurrentTransactionException",
            "ConcurrentWriteException",
            "DeltaConcurrentModificationException",
            "MetadataChangedException",
            "ProtocolChangedException",
        )
    )
    attempt = 1
    while True:
        try:
            return action(), attempt - 1
        except conflicts as exc:
            reason = str(exc).strip().splitlines()[0]
            if attempt >= attempts:
                raise RtrecError(
                    f"{what}: concurrent writers won the commit {attempts} times in a row "
                    f"(last: {reason}); erasure is idempotent: run it again"
                ) from None
            LOG.warning(
                "%s: commit conflict %d of %d, retrying: %s", what, attempt, attempts, reason
            )
            # Jittered, so that retries do not keep meeting a writer that commits periodically.
            time.sleep(backoff_s * attempt * random.uniform(0.5, 1.5))
            attempt += 1


def vacuum(spark: Any, path: str, retention_hours: int, what: str) -> tuple[int, tuple[int, ...]]:
    """VACUUM the table at ``path``: the number of files deleted and the versions that
    referred to them, which time travel can no longer read."""
    from pyspark.errors import IllegalArgumentException

    command = f"VACUUM {sql_table(path)} RETAIN {retention_hours} HOURS"
    try:
        with session_conf(spark, IGNORE_RETAIN, "false"):
            doomed = [row["path"] for row in spark.sql(f"{command} DRY RUN").collect()]
    except IllegalArgumentException as exc:
        if exc.getCondition() != RETENTION_TOO_SHORT:
            raise
        raise RtrecError(
            f"{what}: Delta refuses to vacuum with lake.vacuum_retention_hours={retention_hours}, "
            "below the table's delta.deletedFileRetentionDuration (7 days by default). The "
            "user's rows are deleted from every table's current version; their files stay "
            "until a vacuum with a longer retention, or with "
            "spark.databricks.delta.retentionDurationCheck.enabled=false while nothing else "
            "writes the lake"
        ) from None
    if not doomed:
        return 0, ()
    versions = versions_referencing(spark, path, {PurePosixPath(p).name for p in doomed})
    with session_conf(spark, IGNORE_RETAIN, "false"):
        spark.sql(command).collect()
    return len(doomed), versions


@contextmanager
def session_conf(spark: Any, key: str, value: str) -> Iterator[None]:
    """``key`` set to ``value`` in the session for the duration, then as it was."""
    previous = spark.conf.get(key, None)
    spark.conf.set(key, value)
    try:
        yield
    finally:
        if previous is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, previous)


def versions_referencing(spark: Any, path: str, names: set[str]) -> tuple[int, ...]:
    """The versions, among the commits the log still holds, whose snapshot includes a data
    file named in ``names``. Matched by name, not path: the log URL-encodes paths, and every
    data file's name is unique. (A deletion-vector file is only read with its data file.)"""
    from pyspark.sql import functions as F

    commit_file = F.col("_metadata.file_name")
    path_logged = F.coalesce(F.col("add.path"), F.col("remove.path"))
    name = F.element_at(F.split(path_logged, "/"), -1)
    action = F.struct(name.alias("name"), F.col("add.path").isNotNull().alias("added"))
    commits = (
        spark.read.schema("add struct<path: string>, remove struct<path: string>")
        .json(f"{path}/_delta_log/*.json")
        .where(commit_file.rlike(COMMIT_FILE))
        .groupBy(F.regexp_extract(commit_file, COMMIT_FILE, 1).cast("long").alias("version"))
        .agg(F.collect_list(F.when(name.isin(sorted(names)), action)).alias("actions"))
        .collect()
    )
    return referencing_versions(
        {row["version"]: [(a["name"], a["added"]) for a in row["actions"]] for row in commits}
    )


def referencing_versions(commits: Mapping[int, Sequence[tuple[str, bool]]]) -> tuple[int, ...]:
    """The versions at which at least one of the files is in the snapshot, from each commit's
    ``(file name, added)`` actions on them. A file re-added in the commit that removes it (a
    new deletion vector) stays; one whose first logged action is a removal predates the
    oldest commit the log holds."""
    first: dict[str, bool] = {}
    for version in sorted(commits):
        for name, added in commits[version]:
            first.setdefault(name, added)
    live = {name for name, added in first.items() if not added}
    referencing = []
    for version in sorted(commits):
        after: dict[str, bool] = {}
        for name, added in commits[version]:
            after[name] = after.get(name, False) or added
        for name, added in after.items():
            if added:
                live.add(name)
            else:
                live.discard(name)
        if live:
            referencing.append(version)
    return tuple(referencing)


def sql_table(path: str) -> str:
    """The table at ``path`` as a SQL identifier."""
    return "delta.`" + path.replace("`", "``") + "`"
