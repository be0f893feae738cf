"""Delta ``bronze.events`` -> Delta ``gold.user_features`` / ``gold.item_features`` and
``gold.item_neighbours`` / ``gold.cf_scores``: the batch twins of the streaming behaviour
features and of online CF, recomputed from one bronze snapshot.

Lateness of the features is decided by the stream at arrival time, so their twin takes its
decisions from the stream's late-events ledger (the Kafka topic ``rtrec.events.late``) instead
of guessing a watermark; online CF decides lateness per user from the events alone
(docs/online_cf.md §2), so its twin (``rtrec.cf.spark``) needs only bronze.
``build_feature_tables`` does no I/O; ``run_backfill_features_job`` wires Delta and Kafka in.
Every gold row carries the bronze version it was computed from.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rtrec.batch.ingest import BRONZE_EVENTS, KAFKA_OFFSET, KAFKA_PARTITION
from rtrec.cf.params import cf_params
from rtrec.config import Settings
from rtrec.errors import RtrecError
from rtrec.schema.events import ITEM_ID

JOB = "backfill-features"
USER_FEATURES = ("gold", "user_features")
ITEM_FEATURES = ("gold", "item_features")
ITEM_NEIGHBOURS = ("gold", "item_neighbours")
CF_SCORES = ("gold", "cf_scores")
BRONZE_VERSION = "bronze_version"
KAFKA_PROBE_TIMEOUT_S = 10.0

LOG = logging.getLogger(__name__)
CAPPED_SHOWN = 10  # capped items named in the warning

LateLedgerReader = Callable[[Any, Settings], Any]


@dataclass(frozen=True)
class FeatureTables:
    """The gold feature tables as DataFrames of feature records."""

    user_features: Any  # totals, user windows, sessions and the recent groups
    item_features: Any  # item windows


def build_feature_tables(bronze: Any, late: Any) -> FeatureTables:
    """Every behaviour feature group from bronze rows and the late ledger's coordinates."""
    from rtrec.features import spark as twin

    # Cached: every group reads the same accepted events.
    events = twin.accepted_events(bronze, late).cache()
    return FeatureTables(
        user_features=twin.user_totals(events)
        .unionByName(twin.user_window_features(events))
        .unionByName(twin.session_features(events))
        .unionByName(twin.recent_features(events)),
        item_features=twin.item_window_features(events),
    )


def late_ledger(kafka_rows: Any) -> Any:
    """Kafka rows of the late-events topic -> the Kafka coordinates of late events in
    rtrec.events (``kafka_partition``, ``kafka_offset``), from the behaviour features job."""
    from pyspark.sql import functions as F

    from rtrec.streaming.behaviour_features import SOURCE
    from rtrec.streaming.kafka import DLQ_COLUMNS

    # The columns of the ledger record are the Flink sink's (backquoted DDL parses in both).
    record = F.from_json(F.col("value").cast("string"), ", ".join(DLQ_COLUMNS))
    return (
        kafka_rows.select(record.alias("late"))
        # Other jobs may share the topic with lateness rules of their own.
        .where(F.col("late.source") == SOURCE)
        .select(f"late.{KAFKA_PARTITION}", f"late.{KAFKA_OFFSET}")
    )


def read_late_ledger(spark: Any, settings: Settings) -> Any:
    """The late-events topic from the earliest to the latest offset, through ``late_ledger``.

    A topic that does not exist yet means no event was late; an unreachable Kafka is an error,
    since the features would silently include events the stream dropped."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    # librdkafka logs each failed connection attempt; the failure reaches the user once, below.
    from rtrec.producer import KAFKA_LOG

    servers = settings.kafka.bootstrap_servers
    topic = settings.kafka.topics.late_events
    admin = AdminClient({"bootstrap.servers": servers}, logger=KAFKA_LOG)
    try:
        topics = admin.list_topics(timeout=KAFKA_PROBE_TIMEOUT_S).topics
    except KafkaException as exc:
        raise RtrecError(
            f"cannot read the late-events ledger {topic}: Kafka at {servers} is unreachable "
            f"({exc.args[0].str()})"
        ) from None
    if topic not in topics:
        LOG.info("late-events topic %s does not exist: no event was late", topic)
        return spark.createDataFrame([], "value BINARY").transform(late_ledger)
    rows = (
        spark.read.format("kafka")
        .option("kafka.bootstrap.servers", servers)
        .option("subscribe", topic)
        # The stream writes in transactions (exactly-once): skip aborted and open ones.
        .option("kafka.isolation.level", "read_committed")
        .option("startingOffsets", "earliest")
        .option("endingOffsets", "latest")
        .load()
    )
    return late_ledger(rows)


def run_backfill_features_job(
    settings: Settings, read_late: LateLedgerReader = read_late_ledger
) -> int:
    """Recompute the gold feature and CF tables from the current bronze version; returns that
    version.

    ``read_late`` returns the late coordinates (``late_ledger``'s columns); tests pass one that
    needs no Kafka."""
    from rtrec.batch.delta import current_version, overwrite
    from rtrec.batch.session import create_spark_session
    from rtrec.cf.spark import build_cf_tables

    spark = create_spark_session(settings, JOB)
    bronze_path = settings.lake.table_path(*BRONZE_EVENTS)
    # Pin one version, so every gold table describes the same snapshot even if ingest commits.
    version = current_version(spark, bronze_path, "ingest")
    LOG.info("backfilling features from %s at version %d", bronze_path, version)
    bronze = spark.read.format("delta").option("versionAsOf", version).load(bronze_path)
    # Read the ledger once: each write is a query of its own, and "latest" would move if the
    # stream routed another late event in between.
    late = read_late(spark, settings).localCheckpoint()
    tables = build_feature_tables(bronze, late)
    cf = build_cf_tables(bronze, cf_params(settings.cf))
    warn_about_capped_items(cf.capped, settings.cf.max_partners)
    for (layer, table), frame in (
        (USER_FEATURES, tables.user_features),
        (ITEM_FEATURES, tables.item_features),
        (ITEM_NEIGHBOURS, cf.neighbours),
        (CF_SCORES, cf.scores),
    ):
        overwrite(frame, settings.lake.table_path(layer, table), BRONZE_VERSION, version)
    return version


def warn_about_capped_items(capped: Any, max_partners: int) -> None:
    """Log the items over ``max_partners`` (``CfTables.capped``). The stream prunes their rows,
    so near them its neighbours and scores depend on arrival interleaving and can differ from
    the exact gold tables (docs/online_cf.md §4); gold keeps the exact result."""
    from pyspark.sql import functions as F

    from rtrec.cf.spark import PARTNERS

    rows = capped.orderBy(F.col(PARTNERS).desc(), F.col(ITEM_ID)).collect()
    if rows:
        shown = ", ".join(f"{r[ITEM_ID]} ({r[PARTNERS]})" for r in rows[:CAPPED_SHOWN])
        LOG.warning(
            "%d items have more than cf.max_partners=%d partners, e.g. %s: the stream prunes "
            "their rows, so its neighbours and scores near them may differ from gold",
            len(rows),
            max_partners,
            shown,
        )
