"""Delta ``bronze.events`` -> ``silver.events`` -> the gold training tables.

- ``silver.events``: the valid events (``rtrec.batch.ingest.valid_events``), one row per
  ``event_id``. New ids enter by MERGE (insert when not matched), so a rerun over the same
  bronze adds nothing and a re-sent event never lands twice. Each row carries the start of its
  derived session (a gap of more than ``SESSION_GAP_MS`` in a user's activity starts a new
  one); sessions of the users a run touched are recomputed and MERGEd back, since a late event
  can join or split them.
- ``gold.item_catalogue``: per item its latest category and price, first and last seen.
- ``gold.user_sequences``: per user the interaction steps in time order with consecutive
  repeats collapsed: ``rtrec.training.data.user_steps``, the function training uses, run per
  user by ``applyInPandas``.
- ``gold.training_examples``: every step after a user's first, with the ``max_history`` items
  before it, marked ``train`` or ``test`` by the time split (``split_at_share``).

Every gold row carries the silver version it was built from.
"""

from __future__ import annotations

import logging
from typing import Any

from rtrec.batch.ingest import BRONZE_EVENTS, EVENT_DATE, KAFKA_OFFSET, KAFKA_PARTITION
from rtrec.config import Settings
from rtrec.errors import RtrecError
from rtrec.features.definitions import SESSION_GAP_MS
from rtrec.schema.events import (
    CATEGORY_ID,
    EVENT_ID,
    EVENT_SCHEMA,
    EVENT_TS,
    EVENT_TYPE,
    ITEM_ID,
    PRICE,
    PURCHASE,
    USER_ID,
)

JOB = "curate"
SILVER_EVENTS = ("silver", "events")
ITEM_CATALOGUE = ("gold", "item_catalogue")
USER_SEQUENCES = ("gold", "user_sequences")
TRAINING_EXAMPLES = ("gold", "training_examples")
BOUGHT_TOGETHER = ("gold", "bought_together")
RELATED, SCORE = "items", "score"  # bought_together: per item, (item_id, score) best first
BOUGHT_TOGETHER_TOP = 20
SESSION_START = "session_start_ts"
SILVER_VERSION = "silver_version"
ITEMS, TIMESTAMPS, STEP_TYPES = "items", "timestamps", "event_types"
POSITION, TARGET, TARGET_TS, HISTORY, SPLIT = "position", "target", "target_ts", "history", "split"
TRAIN, TEST = "train", "test"

LOG = logging.getLogger(__name__)


def new_silver_rows(bronze: Any) -> Any:
    """Valid bronze rows, one per event id (the first to arrive), in silver's columns."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from rtrec.batch.ingest import valid_events

    first = Window.partitionBy(EVENT_ID).orderBy(KAFKA_PARTITION, KAFKA_OFFSET)
    return (
        valid_events(bronze)
        .withColumn("_n", F.row_number().over(first))
        .where("_n = 1")
        .select(
            *(F.col(f.name) for f in EVENT_SCHEMA.fields),
            F.col(KAFKA_PARTITION),
            F.col(KAFKA_OFFSET),
            F.col(EVENT_DATE),
            F.lit(None).cast("long").alias(SESSION_START),
        )
    )


def session_starts(events: Any, gap_ms: int = SESSION_GAP_MS) -> Any:
    """(event_id, session_start_ts): a user's session starts with their first event and with
    every event more than ``gap_ms`` after the one before (ties ordered by event id)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    ordered = Window.partitionBy(USER_ID).orderBy(EVENT_TS, EVENT_ID)
    gap = F.col(EVENT_TS) - F.lag(EVENT_TS).over(ordered)
    numbered = events.withColumn(
        "_new", F.when(gap.isNull() | (gap > gap_ms), 1).otherwise(0)
    ).withColumn("_session", F.sum("_new").over(ordered))
    starts = Window.partitionBy(USER_ID, "_session")
    return numbered.select(EVENT_ID, F.min(EVENT_TS).over(starts).alias(SESSION_START))


def merge_into_silver(spark: Any, path: str, rows: Any) -> None:
    """Insert the rows whose event id silver lacks, then re-derive the sessions of the users
    those rows belong to."""
    from delta.tables import DeltaTable

    if not DeltaTable.isDeltaTable(spark, path):
        rows.limit(0).write.format("delta").partitionBy(EVENT_DATE).save(path)
    silver = DeltaTable.forPath(spark, path)
    # The partition column in the condition lets Delta prune the files it scans.
    (
        silver.alias("s")
        .merge(rows.alias("n"), f"s.{EVENT_DATE} = n.{EVENT_DATE} AND s.{EVENT_ID} = n.{EVENT_ID}")
        .whenNotMatchedInsertAll()
        .execute()
    )
    users = rows.select(USER_ID).distinct()
    touched = silver.toDF().join(users, USER_ID, "left_semi")
    (
        silver.alias("s")
        .merge(session_starts(touched).alias("d"), f"s.{EVENT_ID} = d.{EVENT_ID}")
        .whenMatchedUpdate(
            condition=f"s.{SESSION_START} IS NULL OR s.{SESSION_START} <> d.{SESSION_START}",
            set={SESSION_START: f"d.{SESSION_START}"},
        )
        .execute()
    )


def item_catalogue(silver: Any) -> Any:
    from pyspark.sql import functions as F

    return silver.groupBy(ITEM_ID).agg(
        F.max_by(CATEGORY_ID, EVENT_TS).alias(CATEGORY_ID),
        F.max_by(PRICE, EVENT_TS).alias(PRICE),
        F.min(EVENT_TS).alias("first_seen_ts"),
        F.max(EVENT_TS).alias("last_seen_ts"),
        F.count("*").alias("events"),
    )


def bought_together(silver: Any, top: int = BOUGHT_TOGETHER_TOP) -> Any:
    """Per purchased item, the items bought in the same session by the same shopper: ``score``
    is the number of such sessions, best first (ties by item id), at most ``top``."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    baskets = (
        silver.where(F.col(EVENT_TYPE) == PURCHASE)
        .select(USER_ID, SESSION_START, ITEM_ID)
        .distinct()
    )
    pairs = (
        baskets.alias("a")
        .join(baskets.alias("b"), [USER_ID, SESSION_START])
        .where(F.col(f"a.{ITEM_ID}") != F.col(f"b.{ITEM_ID}"))
        .groupBy(F.col(f"a.{ITEM_ID}").alias(ITEM_ID), F.col(f"b.{ITEM_ID}").alias("other"))
        .agg(F.count("*").cast("double").alias(SCORE))
    )
    ranked = pairs.withColumn(
        "rank",
        F.row_number().over(
            Window.partitionBy(ITEM_ID).orderBy(F.col(SCORE).desc(), F.col("other"))
        ),
    ).where(F.col("rank") <= top)
    return ranked.groupBy(ITEM_ID).agg(
        F.transform(
            F.array_sort(F.collect_list(F.struct("rank", "other", SCORE))),
            lambda r: F.struct(r["other"].alias(ITEM_ID), r[SCORE].alias(SCORE)),
        ).alias(RELATED)
    )


def user_sequences(silver: Any) -> Any:
    """Per user the collapsed interaction steps (``user_steps``), as parallel arrays."""
    import pandas as pd

    from rtrec.training.data import user_steps

    def one_user(frame: pd.DataFrame) -> pd.DataFrame:
        # Arrival order breaks ties within a millisecond, as in the stream.
        frame = frame.sort_values([KAFKA_PARTITION, KAFKA_OFFSET], kind="stable")
        steps = user_steps(frame.to_dict("records"))
        return pd.DataFrame(
            [
                {
                    USER_ID: user,
                    ITEMS: [s.item for s in seq],
                    TIMESTAMPS: [s.ts for s in seq],
                    STEP_TYPES: [s.event_type for s in seq],
                }
                for user, seq in steps.items()
            ],
            columns=[USER_ID, ITEMS, TIMESTAMPS, STEP_TYPES],
        )

    columns = [USER_ID, ITEM_ID, EVENT_TS, EVENT_TYPE, KAFKA_PARTITION, KAFKA_OFFSET]
    return (
        silver.select(*columns)
        .groupBy(USER_ID)
        .applyInPandas(
            one_user,
            f"{USER_ID} string, {ITEMS} array<string>, {TIMESTAMPS} array<long>,"
            f" {STEP_TYPES} array<string>",
        )
    )


def split_time(sequences: Any, test_share: float) -> int:
    """The time that leaves the last ``test_share`` of all steps for evaluation (the Spark
    form of ``rtrec.training.data.split_at_share``)."""
    from pyspark.sql import functions as F

    times = sequences.select(F.explode(TIMESTAMPS).alias("ts"))
    count = times.count()
    if count == 0:
        raise RtrecError("no interaction steps in silver: nothing to split")
    index = min(count - 1, int(count * (1.0 - test_share)))
    return int(times.orderBy("ts").limit(index + 1).agg(F.max("ts")).first()[0])


def training_examples(sequences: Any, split_ts: int, max_history: int) -> Any:
    """Every step after a user's first, with up to ``max_history`` items before it."""
    from pyspark.sql import functions as F

    steps = sequences.select(
        USER_ID,
        F.col(ITEMS),
        F.posexplode(F.arrays_zip(F.col(ITEMS), F.col(TIMESTAMPS))).alias(POSITION, "step"),
    ).where(F.col(POSITION) > 0)
    start = F.greatest(F.lit(0), F.col(POSITION) - max_history)
    return steps.select(
        USER_ID,
        F.col(POSITION).cast("int").alias(POSITION),
        F.col(f"step.{ITEMS}").alias(TARGET),
        F.col(f"step.{TIMESTAMPS}").alias(TARGET_TS),
        F.slice(F.col(ITEMS), start + 1, F.col(POSITION) - start).alias(HISTORY),
        F.when(F.col(f"step.{TIMESTAMPS}") >= split_ts, TEST).otherwise(TRAIN).alias(SPLIT),
    )


def run_curate_job(settings: Settings) -> int:
    """MERGE bronze's new events into silver, then rebuild the gold tables from the silver
    version that produced; returns that version."""
    from rtrec.batch.delta import current_version, overwrite
    from rtrec.batch.session import create_spark_session

    spark = create_spark_session(settings, JOB)
    bronze_path = settings.lake.table_path(*BRONZE_EVENTS)
    current_version(spark, bronze_path, "ingest")  # fails clearly when there is no bronze
    silver_path = settings.lake.table_path(*SILVER_EVENTS)
    bronze = spark.read.format("delta").load(bronze_path)
    merge_into_silver(spark, silver_path, new_silver_rows(bronze))
    version = current_version(spark, silver_path, JOB)
    silver = spark.read.format("delta").option("versionAsOf", version).load(silver_path)
    sequences = user_sequences(silver).localCheckpoint()
    split_ts = split_time(sequences, settings.training.test_share)
    LOG.info("curating gold from silver version %d, split at %d", version, split_ts)
    for (layer, table), frame in (
        (ITEM_CATALOGUE, item_catalogue(silver)),
        (USER_SEQUENCES, sequences),
        (TRAINING_EXAMPLES, training_examples(sequences, split_ts, settings.training.max_history)),
        (BOUGHT_TOGETHER, bought_together(silver)),
    ):
        overwrite(frame, settings.lake.table_path(layer, table), SILVER_VERSION, version)
    return version
