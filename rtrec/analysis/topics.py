"""Reading a Kafka topic from its beginning to its current end, for analysis."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from rtrec.errors import RtrecError
from rtrec.producer import KAFKA_LOG


@dataclass(frozen=True)
class TopicMessage:
    key: bytes | None
    value: bytes | None
    timestamp_ms: int  # the record's timestamp (the producer sets event time)


def read_topic(
    bootstrap: str, topic: str, max_messages: int | None = None, timeout_s: float = 60.0
) -> list[TopicMessage]:
    """The committed messages of ``topic`` from the beginning up to the end each partition has
    now (or the first ``max_messages``, partitions interleaved as they arrive).

    Partitions are assigned rather than subscribed: no consumer-group join to wait for, and no
    offsets committed, so reading never disturbs a job's group. Stops at ``timeout_s`` with what
    it has. Raises RtrecError naming the broker or topic when either is missing."""
    from confluent_kafka import (
        OFFSET_BEGINNING,
        Consumer,
        KafkaError,
        KafkaException,
        TopicPartition,
    )

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"rtrec-analysis-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            # Transactional jobs (the Flink sinks) write aborted records too; skip them.
            "isolation.level": "read_committed",
            # One librdkafka line per reconnect attempt would flood a notebook's output; a
            # broker that does not answer is reported once, as an RtrecError.
            "logger": KAFKA_LOG,
        }
    )
    try:
        try:
            metadata = consumer.list_topics(topic, timeout=10)
        except KafkaException as exc:
            raise RtrecError(f"Kafka at {bootstrap} did not answer: {exc.args[0]}") from None
        found = metadata.topics.get(topic)
        if found is None or found.error is not None or not found.partitions:
            raise RtrecError(f"topic {topic!r} does not exist on Kafka at {bootstrap}")
        pending = set(found.partitions)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in sorted(pending)])
        messages: list[TopicMessage] = []
        deadline = time.monotonic() + timeout_s
        while pending and time.monotonic() < deadline:
            if max_messages is not None and len(messages) >= max_messages:
                break
            for message in consumer.consume(1000, timeout=0.5):
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        pending.discard(message.partition())
                        continue
                    raise RtrecError(f"reading {topic!r} from {bootstrap} failed: {error}")
                messages.append(
                    TopicMessage(
                        message.key(),
                        message.value(),
                        int(message.timestamp()[1]),
                    )
                )
        return messages if max_messages is None else messages[:max_messages]
    finally:
        consumer.close()
