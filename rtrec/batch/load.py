"""A public dataset (``rtrec.sources.replay`` formats) replayed straight into ``bronze.events``.

History that never went through Kafka, for training and ``bench/quality.py``: each event
becomes the Kafka record the producer would have sent (the same payload bytes, partitioned by
user so a user's events keep their order, the event time as record timestamp, offsets counting
up per partition) and passes through the ingest job's own transformation (``to_bronze``), so
curate sees exactly what a live replay would have left. A row the format cannot map is kept as
its dead-letter record: bronze holds it with its parse error, and silver leaves it out.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rtrec.batch.ingest import BRONZE_EVENTS, EVENT_DATE, to_bronze
from rtrec.config import Settings
from rtrec.schema.events import EVENT_TS, USER_ID
from rtrec.schema.wire import encode
from rtrec.sources import BadRow
from rtrec.sources.replay import replay

CHUNK_ROWS = 100_000  # rows handed to Spark per append: bounds the driver's memory


@dataclass(frozen=True)
class Loaded:
    events: int
    bad_rows: int
    version: int  # bronze's Delta version after the load


def load_dataset(spark: Any, settings: Settings, fmt: str, path: Path) -> Loaded:
    """Append ``path`` (in ``fmt``) to bronze in event-time order; returns what was written."""
    from pyspark.sql import functions as F

    from rtrec.batch.delta import current_version

    bronze_path = settings.lake.table_path(*BRONZE_EVENTS)
    partitions = settings.kafka.partitions
    offsets = [0] * partitions
    chunk: list[tuple[bytes, int, int, int]] = []
    events = bad = 0

    def flush() -> None:
        kafka = spark.createDataFrame(
            chunk, "value binary, partition int, offset long, ts_ms long"
        ).select("value", "partition", "offset", F.timestamp_millis("ts_ms").alias("timestamp"))
        to_bronze(kafka).write.format("delta").mode("append").partitionBy(EVENT_DATE).save(
            bronze_path
        )
        chunk.clear()

    for record in replay(fmt, path):
        if isinstance(record, BadRow):
            # No user to partition by, and no event time: the broker would stamp the arrival.
            payload, partition = record.dead_letter(f"{fmt}:{path.name}"), 0
            ts = int(time.time() * 1000)
            bad += 1
        else:
            payload, ts = encode(record), int(record[EVENT_TS])
            # Any fixed function of the user keeps a user's events in one ordered partition
            # (the producer's Kafka key hashing is another such function).
            partition = zlib.crc32(str(record[USER_ID]).encode()) % partitions
            events += 1
        chunk.append((payload, partition, offsets[partition], ts))
        offsets[partition] += 1
        if len(chunk) >= CHUNK_ROWS:
            flush()
    if chunk:
        flush()
    return Loaded(events, bad, current_version(spark, bronze_path, "load"))
