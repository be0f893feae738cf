"""Kafka `rtrec.events` -> Delta `bronze.events`: every record as received, exactly once.

Exactly-once comes from Structured Streaming's checkpoint (Kafka offsets and the Delta commit
are recorded together). Bronze keeps malformed and duplicate records too: it is the replayable
truth; silver filters and deduplicates.
"""

from __future__ import annotations

from typing import Any

from rtrec.config import Settings
from rtrec.schema.events import EVENT_SCHEMA, EVENT_TS
from rtrec.schema.spark import spark_struct
from rtrec.schema.wire import MAX_FUTURE_MS, PARSE_ERROR, PARSED_COLUMNS, parsed_row

JOB = "ingest"
BRONZE_EVENTS = ("bronze", "events")
PAYLOAD = "payload"
EVENT_DATE = "event_date"
KAFKA_PARTITION = "kafka_partition"
KAFKA_OFFSET = "kafka_offset"
KAFKA_TIMESTAMP = "kafka_timestamp"
KAFKA_COLUMNS = (KAFKA_PARTITION, KAFKA_OFFSET, KAFKA_TIMESTAMP)
INGESTED_AT = "ingested_at"


def parsed_struct() -> Any:
    """The parse result as a Spark struct: the reason, then every event field (nullable, since a
    rejected record has none)."""
    from pyspark.sql import types as T

    fields = [T.StructField(f.name, f.dataType, True) for f in spark_struct(EVENT_SCHEMA).fields]
    return T.StructType([T.StructField(PARSE_ERROR, T.StringType(), True), *fields])


def to_bronze(kafka_rows: Any) -> Any:
    """Kafka source rows -> bronze rows. Pure DataFrame transformation (no I/O)."""
    from pyspark.sql import functions as F

    parse = F.udf(parsed_row, parsed_struct())
    parsed = kafka_rows.select(
        F.col("value").cast("string").alias(PAYLOAD),
        F.col("partition").alias(KAFKA_PARTITION),
        F.col("offset").alias(KAFKA_OFFSET),
        F.col("timestamp").alias(KAFKA_TIMESTAMP),
    ).withColumn("parsed", parse(F.col(PAYLOAD)))
    event_time = F.coalesce(F.timestamp_millis(F.col(f"parsed.{EVENT_TS}")), F.col(KAFKA_TIMESTAMP))
    return parsed.select(
        *(F.col(f"parsed.{name}").alias(name) for name in PARSED_COLUMNS),
        F.col(PAYLOAD),
        *(F.col(c) for c in KAFKA_COLUMNS),
        F.current_timestamp().alias(INGESTED_AT),
        F.to_date(event_time).alias(EVENT_DATE),
    )


def valid_events(bronze: Any) -> Any:
    """Bronze rows the stream accepts as events: parsed without error and not more than
    ``MAX_FUTURE_MS`` ahead of their Kafka timestamp. Bronze parses without the arrival time,
    the stream's ``parse_event`` with it (``rtrec.schema.wire.parsed_row``); every batch twin
    starts from this."""
    from pyspark.sql import functions as F

    ahead = F.col(EVENT_TS) - F.unix_millis(F.col(KAFKA_TIMESTAMP))
    return bronze.where(
        F.col(PARSE_ERROR).isNull() & F.coalesce(ahead <= MAX_FUTURE_MS, F.lit(True))
    )


def run_ingest_job(settings: Settings) -> None:
    """Stream Kafka into bronze; with ``lake.ingest_trigger=available_now``, stop when caught up."""
    from rtrec.batch.session import create_spark_session

    spark = create_spark_session(settings, JOB)
    source = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", settings.kafka.bootstrap_servers)
        .option("subscribe", settings.kafka.topics.events)
        .option("startingOffsets", "earliest")
        .load()
    )
    writer = (
        to_bronze(source)
        .writeStream.format("delta")
        .outputMode("append")
        .option("checkpointLocation", settings.lake.checkpoint_path(JOB))
        .partitionBy(EVENT_DATE)
    )
    if settings.lake.ingest_trigger == "available_now":
        writer = writer.trigger(availableNow=True)
    else:
        writer = writer.trigger(processingTime=f"{settings.lake.trigger_interval_s} seconds")
    writer.start(settings.lake.table_path(*BRONZE_EVENTS)).awaitTermination()
