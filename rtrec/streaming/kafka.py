"""Kafka table definitions for Flink SQL: the raw event source, the DLQ and upsert sinks."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rtrec.config import Settings
from rtrec.schema.flink import EVENT_TIME, create_table_ddl, interval
from rtrec.schema.wire import MAX_FUTURE_MS

# Columns of a dead-letter or late-event record (JSON on the DLQ and late-events topics). The
# Kafka coordinates of the original record let a batch recomputation exclude exactly it.
DLQ_COLUMNS = [
    "`raw` STRING",
    "`reason` STRING",
    "`source` STRING",
    "`kafka_partition` INT",
    "`kafka_offset` BIGINT",
]


def raw_events_ddl(settings: Settings, table: str, group_id: str) -> str:
    """Events as received: the payload untouched, so a malformed one can still be dead-lettered.

    The rowtime comes from the payload's event_ts, parsed in SQL (in the JVM) for the
    watermark. A payload without a usable one, or one from further in the future than
    ``MAX_FUTURE_MS`` (which the validator rejects too), takes Kafka's timestamp instead, so a
    bad record can neither stall nor leap the watermark. The watermark waits for the bounded
    out-of-orderness plus the allowed lateness.
    """
    claimed = "TRY_CAST(JSON_VALUE(payload, '$.event_ts') AS BIGINT)"
    delay_ms = settings.flink.watermark_delay_ms + settings.flink.allowed_lateness_ms
    delay = interval(delay_ms)
    horizon = f"kafka_ts + {interval(MAX_FUTURE_MS)}"
    event_time = (
        f"`{EVENT_TIME}` AS CASE WHEN {claimed} IS NULL OR {claimed} < 0 "
        f"OR TO_TIMESTAMP_LTZ({claimed}, 3) > {horizon} "
        f"THEN kafka_ts ELSE TO_TIMESTAMP_LTZ({claimed}, 3) END"
    )
    return create_table_ddl(
        table,
        [
            "`payload` STRING",
            "`kafka_ts` TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL",
            "`kafka_partition` INT METADATA FROM 'partition' VIRTUAL",
            "`kafka_offset` BIGINT METADATA FROM 'offset' VIRTUAL",
            "`proc_time` AS PROCTIME()",
            event_time,
            f"WATERMARK FOR `{EVENT_TIME}` AS `{EVENT_TIME}` - {delay}",
        ],
        {
            "connector": "kafka",
            "topic": settings.kafka.topics.events,
            "properties.bootstrap.servers": settings.kafka.bootstrap_servers,
            "properties.group.id": group_id,
            # Resume from the group's committed offsets; a new group starts at the beginning.
            "scan.startup.mode": "group-offsets",
            "properties.auto.offset.reset": "earliest",
            # Only what upstream transactions committed: aborted writes are not events.
            "properties.isolation.level": "read_committed",
            "format": "raw",
        },
    )


# A forget record (rtrec.privacy.forget): the user's pseudonym, when it was asked, and the end
# offset of each events-topic partition then (keys are partition numbers as strings).
FORGET_COLUMNS = [
    "`user_id` STRING",
    "`requested_at` BIGINT",
    "`offsets` MAP<STRING, BIGINT>",
]


def forget_ddl(settings: Settings, table: str, group_id: str, watermarked: bool = False) -> str:
    """The forget records of ``kafka.topics.forget``, from the group's offsets (a new group
    reads them all: the topic is compacted to the latest request per user).

    ``watermarked`` adds the rowtime ``event_time`` (the request's time) and a watermark on it,
    for a DataStream job that joins the records to the events: a join takes the lowest
    watermark of its inputs, and a source without any would stop event time. A partition
    with no record for a second is idle, which takes it out of that minimum; a request's own
    time is later than the events' watermark, which trails their times by its delay."""
    columns = list(FORGET_COLUMNS)
    watermark: dict[str, str] = {}
    if watermarked:
        rowtime = "TO_TIMESTAMP_LTZ(COALESCE(`requested_at`, 0), 3)"
        columns += [
            f"`{EVENT_TIME}` AS {rowtime}",
            f"WATERMARK FOR `{EVENT_TIME}` AS `{EVENT_TIME}`",
        ]
        watermark = {"scan.watermark.idle-timeout": "1 s"}
    return create_table_ddl(
        table,
        columns,
        {
            **watermark,
            "connector": "kafka",
            "topic": settings.kafka.topics.forget,
            "properties.bootstrap.servers": settings.kafka.bootstrap_servers,
            "properties.group.id": group_id,
            "scan.startup.mode": "group-offsets",
            "properties.auto.offset.reset": "earliest",
            "format": "json",
            # A record that is not a forget request must not stop the job.
            "json.ignore-parse-errors": "true",
        },
    )


def forget_file_ddl(table: str, path: Path) -> str:
    """``forget_ddl``'s columns read from a file of JSON forget records, for tests."""
    return create_table_ddl(
        table, FORGET_COLUMNS, {"connector": "filesystem", "path": str(path), "format": "json"}
    )


def raw_file_ddl(
    table: str, path: Path, watermark_delay_ms: int = 5000, offset_is_event_ts: bool = False
) -> str:
    """The columns of ``raw_events_ddl`` read from a file of payloads, one per line, for tests
    and benchmarks: as the producer does, the Kafka timestamp is the claimed event time (0 when
    there is none), and every line is at partition 0, offset 0 — or, with
    ``offset_is_event_ts``, at the claimed event time as its offset, so offsets grow with each
    user's events as they do in a partition (what a forget record's offsets cut)."""
    claimed = "TRY_CAST(JSON_VALUE(payload, '$.event_ts') AS BIGINT)"
    kafka_ts = f"TO_TIMESTAMP_LTZ(COALESCE({claimed}, 0), 3)"
    offset = f"COALESCE({claimed}, 0)" if offset_is_event_ts else "0"
    return create_table_ddl(
        table,
        [
            "`payload` STRING",
            f"`kafka_ts` AS {kafka_ts}",
            "`kafka_partition` AS 0",
            f"`kafka_offset` AS CAST({offset} AS BIGINT)",
            "`proc_time` AS PROCTIME()",
            f"`{EVENT_TIME}` AS {kafka_ts}",
            f"WATERMARK FOR `{EVENT_TIME}` AS `{EVENT_TIME}` - {interval(watermark_delay_ms)}",
        ],
        {"connector": "filesystem", "path": str(path), "format": "raw"},
    )


def sink_options(settings: Settings, table: str, topic: str) -> dict[str, str]:
    """Options of every Kafka sink: the configured delivery guarantee. Exactly-once writes in
    Kafka transactions committed with each checkpoint; the transactional id prefix names the
    consumer group and the sink table, so no two sinks (or jobs) fence each other. Two sinks
    on one topic need two tables."""
    options = {
        "topic": topic,
        "properties.bootstrap.servers": settings.kafka.bootstrap_servers,
        "sink.delivery-guarantee": settings.flink.delivery_guarantee,
    }
    if settings.flink.delivery_guarantee == "exactly-once":
        options["sink.transactional-id-prefix"] = f"{settings.flink.consumer_group}-{table}"
        options["properties.transaction.timeout.ms"] = str(settings.flink.transaction_timeout_ms)
    return options


def dlq_ddl(settings: Settings, table: str, topic: str | None = None) -> str:
    """A dead-letter style sink (raw, reason, source) on ``topic`` (default: the DLQ)."""
    return create_table_ddl(
        table,
        DLQ_COLUMNS,
        {
            "connector": "kafka",
            **sink_options(settings, table, topic or settings.kafka.topics.dlq),
            "format": "json",
        },
    )


def upsert_ddl(
    settings: Settings, table: str, topic: str, columns: list[str], key: str | Sequence[str]
) -> str:
    """A compacted upsert topic keyed by ``key``: the raw bytes of a single id, or a JSON object
    of a composite key. Values are JSON."""
    keys = [key] if isinstance(key, str) else list(key)
    primary_key = ", ".join(f"`{k}`" for k in keys)
    return create_table_ddl(
        table,
        [*columns, f"PRIMARY KEY ({primary_key}) NOT ENFORCED"],
        {
            "connector": "upsert-kafka",
            **sink_options(settings, table, topic),
            "key.format": "raw" if len(keys) == 1 else "json",
            "value.format": "json",
        },
    )
