"""Kafka table definitions for Flink SQL: the raw event source, the DLQ and upsert sinks."""

from __future__ import annotations

from rtrec.config import Settings
from rtrec.schema.flink import create_table_ddl

# Columns of a dead-letter record (JSON on the DLQ topic).
DLQ_COLUMNS = ["`raw` STRING", "`reason` STRING", "`source` STRING"]


def raw_events_ddl(settings: Settings, table: str, group_id: str) -> str:
    """Events as received: the payload untouched, so a malformed one can still be dead-lettered."""
    return create_table_ddl(
        table,
        ["`payload` STRING", "`proc_time` AS PROCTIME()"],
        {
            "connector": "kafka",
            "topic": settings.kafka.topics.events,
            "properties.bootstrap.servers": settings.kafka.bootstrap_servers,
            "properties.group.id": group_id,
            # Resume from the group's committed offsets; a new group starts at the beginning.
            "scan.startup.mode": "group-offsets",
            "properties.auto.offset.reset": "earliest",
            "format": "raw",
        },
    )


def dlq_ddl(settings: Settings, table: str) -> str:
    return create_table_ddl(
        table,
        DLQ_COLUMNS,
        {
            "connector": "kafka",
            "topic": settings.kafka.topics.dlq,
            "properties.bootstrap.servers": settings.kafka.bootstrap_servers,
            "format": "json",
        },
    )


def upsert_ddl(settings: Settings, table: str, topic: str, columns: list[str], key: str) -> str:
    """A compacted upsert topic keyed by ``key`` (raw bytes of the id), JSON values."""
    return create_table_ddl(
        table,
        [*columns, f"PRIMARY KEY (`{key}`) NOT ENFORCED"],
        {
            "connector": "upsert-kafka",
            "topic": topic,
            "properties.bootstrap.servers": settings.kafka.bootstrap_servers,
            "key.format": "raw",
            "value.format": "json",
        },
    )
