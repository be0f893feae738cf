"""Spark twin of the behaviour features: DataFrame functions (no I/O) named after the
plain-Python reference (``rtrec.features.reference``, ``rtrec.features.user_counts``) and held
equal to it by tests/spark/test_features_twin.py.

Every function returns rows shaped like a feature record on Kafka: ``entity_id``,
``feature_group``, ``start_ms``, ``end_ms`` and ``features`` (MAP<STRING, DOUBLE>). Windows,
groups and feature names come from ``rtrec.features.definitions``; window bounds are computed
in integer epoch milliseconds, as the reference does, so no timestamp conversion can shift them.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import reduce
from typing import Any

from pyspark.sql import Column, DataFrame, GroupedData, Window
from pyspark.sql import functions as F

from rtrec.batch.ingest import KAFKA_OFFSET, KAFKA_PARTITION, valid_events
from rtrec.features.definitions import (
    CARTS,
    CONVERSION,
    DISTINCT_ITEMS,
    ENTITY_ID,
    EVENTS,
    FEATURE_GROUP,
    FEATURES,
    INTENT_WEIGHTS,
    ITEM_WINDOWS,
    NOT_RECENT,
    PURCHASES,
    RECENT_EVENTS,
    SESSION_GAP_MS,
    SESSION_GROUP,
    SESSION_LENGTH_MS,
    TOTALS_GROUP,
    TRENDING,
    USER_WINDOWS,
    VIEWS,
    WINDOW_END,
    WINDOW_START,
    HopWindow,
    type_count,
)
from rtrec.features.recent import recent_features as recent_feature_maps
from rtrec.features.user_counts import LAST_EVENT_TS
from rtrec.schema.events import (
    ADD_TO_CART,
    CATEGORY_ID,
    EVENT_ID,
    EVENT_TS,
    EVENT_TYPE,
    EVENT_TYPES,
    ITEM_ID,
    PURCHASE,
    USER_ID,
    VIEW,
)

# The coordinates of a record in rtrec.events: how the late-events ledger names a late event.
KAFKA_COORDINATES = (KAFKA_PARTITION, KAFKA_OFFSET)


def accepted_events(bronze: DataFrame, late: DataFrame) -> DataFrame:
    """The input of every feature: bronze rows that are valid (``valid_events``), not late and
    the first occurrence of their ``event_id``.

    ``late`` holds the Kafka coordinates (``kafka_partition``, ``kafka_offset``) of the events
    the stream found behind its watermark. Late rows are removed before deduplication, as the
    stream does. The first occurrence is the smallest (partition, offset): a re-send has the
    same user, hence the same partition, so the offset orders it after the original.
    """
    on_time = valid_events(bronze).join(
        late.select(*KAFKA_COORDINATES), list(KAFKA_COORDINATES), "left_anti"
    )
    first = Window.partitionBy(EVENT_ID).orderBy(*KAFKA_COORDINATES)
    return (
        on_time.withColumn("_occurrence", F.row_number().over(first))
        .where(F.col("_occurrence") == 1)
        .drop("_occurrence")
    )


def user_window_features(events: DataFrame) -> DataFrame:
    """Per user and sliding window of ``USER_WINDOWS``: events and one count per event type."""
    return _union(_hop(events, USER_ID, window, _user_counts()) for window in USER_WINDOWS)


def item_window_features(events: DataFrame) -> DataFrame:
    """Per item and sliding window of ``ITEM_WINDOWS``: views, carts, purchases, conversion
    (purchases / views, 0 without views) and trending (interactions weighted by intent)."""
    views, purchases = _count(VIEW), _count(PURCHASE)
    trending = reduce(
        Column.__add__, (F.lit(weight) * _count(kind) for kind, weight in INTENT_WEIGHTS.items())
    )
    features = [
        (VIEWS, views),
        (CARTS, _count(ADD_TO_CART)),
        (PURCHASES, purchases),
        (CONVERSION, F.when(views > 0, purchases / views).otherwise(F.lit(0.0))),
        (TRENDING, trending),
    ]
    return _union(_hop(events, ITEM_ID, window, features) for window in ITEM_WINDOWS)


def session_features(events: DataFrame) -> DataFrame:
    """Per user session: a run of the user's events with no gap longer than ``SESSION_GAP_MS``
    (a gap of exactly the limit joins, as in the reference); the window ends one gap after the
    last event.

    Sessions are numbered with lag() and a running sum rather than Spark's session_window, so
    the boundary rule is the reference's by construction."""
    # event_id breaks ties in time so the numbering is deterministic; tied events are 0 ms
    # apart and always share a session whichever comes first.
    by_time = Window.partitionBy(USER_ID).orderBy(EVENT_TS, EVENT_ID)
    gap = F.col(EVENT_TS) - F.lag(EVENT_TS).over(by_time)
    opens = F.when(gap.isNull() | (gap > SESSION_GAP_MS), 1).otherwise(0)
    running = by_time.rowsBetween(Window.unboundedPreceding, Window.currentRow)
    # A window function cannot nest in another: flag the openings first, then count them.
    numbered = events.withColumn("_opens", opens).withColumn(
        "_session", F.sum("_opens").over(running)
    )
    first, last = F.min(EVENT_TS), F.max(EVENT_TS)
    features = [
        (EVENTS, _count_all()),
        (SESSION_LENGTH_MS, (last - first).cast("double")),
        (DISTINCT_ITEMS, F.count_distinct(ITEM_ID).cast("double")),
        (CARTS, _count(ADD_TO_CART)),
        (PURCHASES, _count(PURCHASE)),
    ]
    sessions = numbered.groupBy(USER_ID, "_session")
    return _records(sessions, USER_ID, SESSION_GROUP, first, last + SESSION_GAP_MS, features)


def recent_features(events: DataFrame) -> DataFrame:
    """Per user, the recent-behaviour groups as of their latest event, which is the record the
    stream's upsert topic ends with: from the last ``RECENT_EVENTS`` events (types outside
    ``NOT_RECENT``) in (event time, event id) order, spanning the oldest to the newest."""
    newest_first = Window.partitionBy(USER_ID).orderBy(F.desc(EVENT_TS), F.desc(EVENT_ID))
    last = (
        events.where(~F.col(EVENT_TYPE).isin(*NOT_RECENT))
        .withColumn("_rank", F.row_number().over(newest_first))
        .where(F.col("_rank") <= RECENT_EVENTS)
    )
    # One list of structs, so the four fields of an event stay together.
    collected = last.groupBy(USER_ID).agg(
        F.collect_list(F.struct(ITEM_ID, CATEGORY_ID, EVENT_TYPE, EVENT_TS)).alias("_events"),
        F.min(EVENT_TS).alias(WINDOW_START),
        F.max(EVENT_TS).alias(WINDOW_END),
    )
    # Plain pickled rows (useArrow False): the struct fields are read by name.
    groups = F.udf(
        _recent_groups,
        f"array<struct<{FEATURE_GROUP}: string, {FEATURES}: map<string, double>>>",
        useArrow=False,
    )
    return collected.select(
        F.col(USER_ID).alias(ENTITY_ID),
        F.explode(groups("_events")).alias("_group"),
        WINDOW_START,
        WINDOW_END,
    ).select(ENTITY_ID, f"_group.{FEATURE_GROUP}", WINDOW_START, WINDOW_END, f"_group.{FEATURES}")


def _recent_groups(events: list[Any]) -> list[tuple[str, dict[str, float]]]:
    # The same function the stream calls, so the floats agree to the bit.
    maps = recent_feature_maps(
        [e[ITEM_ID] for e in events],
        [e[CATEGORY_ID] for e in events],
        [e[EVENT_TYPE] for e in events],
        [e[EVENT_TS] for e in events],
    )
    return list(maps.items())


def user_totals(events: DataFrame) -> DataFrame:
    """Per user over all accepted events (the ``totals`` group): events, one count per event
    type and ``last_event_ts``; the record spans the first to the last event time."""
    first, last = F.min(EVENT_TS), F.max(EVENT_TS)
    features = [*_user_counts(), (LAST_EVENT_TS, last.cast("double"))]
    return _records(events.groupBy(USER_ID), USER_ID, TOTALS_GROUP, first, last, features)


def _count_all() -> Column:
    return F.count(F.lit(1)).cast("double")


def _count(event_type: str) -> Column:
    return F.count_if(F.col(EVENT_TYPE) == event_type).cast("double")


def _user_counts() -> list[tuple[str, Column]]:
    return [(EVENTS, _count_all()), *((type_count(kind), _count(kind)) for kind in EVENT_TYPES)]


def _hop(
    events: DataFrame, key: str, window: HopWindow, features: list[tuple[str, Column]]
) -> DataFrame:
    # The epoch-aligned windows containing ts start at the last slide boundary at or before ts
    # and at every slide before it, back to size - slide earlier (reference.hop_starts).
    last = F.col(EVENT_TS) - F.col(EVENT_TS) % window.slide_ms
    first = last - (window.size_ms - window.slide_ms)
    starts = F.sequence(first, last, F.lit(window.slide_ms).cast("long"))
    exploded = events.withColumn("_start", F.explode(starts)).groupBy(key, "_start")
    start = F.col("_start")
    return _records(exploded, key, window.group, start, start + window.size_ms, features)


def _records(
    grouped: GroupedData,
    key: str,
    group: str,
    start: Column,
    end: Column,
    features: list[tuple[str, Column]],
) -> DataFrame:
    """One feature record per group of ``grouped`` (grouped by ``key`` and the window)."""
    pairs = [part for name, value in features for part in (F.lit(name), value)]
    return grouped.agg(
        start.cast("long").alias(WINDOW_START),
        end.cast("long").alias(WINDOW_END),
        F.create_map(*pairs).alias(FEATURES),
    ).select(
        F.col(key).alias(ENTITY_ID),
        F.lit(group).alias(FEATURE_GROUP),
        WINDOW_START,
        WINDOW_END,
        FEATURES,
    )


def _union(frames: Iterable[DataFrame]) -> DataFrame:
    return reduce(DataFrame.unionByName, frames)
