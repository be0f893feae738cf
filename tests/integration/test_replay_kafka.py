"""Replay through the real producer into a running Kafka, read back from the topics.

Each test reads exactly the offsets it produced (end offsets before -> after), so earlier tests
or other data in the shared topics do not disturb the counts.

Order: the producer sends in global event-time order and keys by user_id, and Kafka keeps order
per partition, so what must hold after a round trip is event-time order within each partition
(hence per user) plus the same multiset of events; a consumer of several partitions interleaves
them arbitrarily.
"""

from __future__ import annotations

import io
import json
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import TIMESTAMP_CREATE_TIME, Consumer, Message, TopicPartition

from rtrec.config import Settings
from rtrec.producer import produce
from rtrec.schema import validate
from rtrec.sources.replay import replay

pytestmark = pytest.mark.integration

READ_TIMEOUT_S = 60.0


def otto_sample(settings: Settings) -> Path:
    """The real OTTO fixture in ../shared next to the repository (CC BY 4.0, see its README)."""
    return settings.root.parent / "shared" / "data" / "otto-sample" / "sessions.jsonl"


def end_offsets(settings: Settings, topic: str) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": settings.kafka.bootstrap_servers, "group.id": "x"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in partitions
        }
    finally:
        consumer.close()


def read_range(
    settings: Settings, topic: str, start: dict[int, int], end: dict[int, int]
) -> list[Message]:
    """Every message of ``topic`` between two end-offset snapshots, in offset order per
    partition."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "group.id": f"rtrec-test-{time.time_ns()}",
            "enable.auto.commit": False,
        }
    )
    wanted = {p: end[p] - start.get(p, 0) for p in end if end[p] > start.get(p, 0)}
    consumer.assign([TopicPartition(topic, p, start.get(p, 0)) for p in wanted])
    messages: list[Message] = []
    deadline = time.monotonic() + READ_TIMEOUT_S
    try:
        while sum(wanted.values()) > 0 and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is None:
                continue
            assert message.error() is None, message.error()
            partition, offset = message.partition(), message.offset()
            assert partition is not None and offset is not None
            if offset < end[partition]:
                messages.append(message)
                wanted[partition] -= 1
    finally:
        consumer.close()
    return messages


def value(message: Message) -> Any:
    payload = message.value()
    assert isinstance(payload, bytes)
    return payload


def test_otto_fixture_round_trips_in_event_time_order(stack: Any) -> None:
    settings: Settings = stack.settings
    topic = settings.kafka.topics.events
    expected = list(replay("otto", otto_sample(settings)))
    before = end_offsets(settings, topic)

    summary = produce(settings, replay("otto", otto_sample(settings)), out=io.StringIO())

    assert (summary.valid, summary.dead_lettered) == (862, 0)
    messages = read_range(settings, topic, before, end_offsets(settings, topic))
    assert len(messages) == 862
    by_partition: dict[int, list[int]] = defaultdict(list)
    records = []
    for message in messages:
        result = validate(value(message))
        assert result.ok, result.error
        record = result.record
        assert record is not None
        records.append(record)
        assert message.key() == record["user_id"].encode()
        assert message.timestamp() == (TIMESTAMP_CREATE_TIME, record["event_ts"])
        partition = message.partition()
        assert partition is not None
        by_partition[partition].append(record["event_ts"])
    assert Counter(r["event_type"] for r in records) == {
        "click": 800,
        "add_to_cart": 52,
        "purchase": 10,
    }
    assert sorted(records, key=lambda r: r["event_id"]) == sorted(
        (r for r in expected if isinstance(r, dict)), key=lambda r: r["event_id"]
    )
    for timestamps in by_partition.values():
        assert timestamps == sorted(timestamps)


def test_bad_rows_go_to_the_dead_letter_topic_with_line_and_reason(
    stack: Any, tmp_path: Path
) -> None:
    settings: Settings = stack.settings
    path = tmp_path / f"UserBehavior-{time.time_ns()}.csv"
    path.write_text("1,10,7,pv,1511544070\n1,11,7,cart,1511544071\n1,12,7,pv,soon\n")
    topics = settings.kafka.topics
    before = {t: end_offsets(settings, t) for t in (topics.events, topics.dlq)}

    source = f"replay:taobao:{path}"
    summary = produce(settings, replay("taobao", path), source=source, out=io.StringIO())

    assert (summary.valid, summary.dead_lettered) == (2, 1)
    after = {t: end_offsets(settings, t) for t in before}
    dead = [
        json.loads(value(m))
        for m in read_range(settings, topics.dlq, before[topics.dlq], after[topics.dlq])
    ]
    mine = [d for d in dead if d["source"].startswith(source)]
    assert mine == [
        {
            "raw": "1,12,7,pv,soon",
            "reason": "timestamp is not an integer: 'soon'",
            "source": f"{source}:3",
        }
    ]
    events = read_range(settings, topics.events, before[topics.events], after[topics.events])
    ids = {json.loads(value(m))["event_id"] for m in events}
    assert {f"taobao:{path.name}:1", f"taobao:{path.name}:2"} <= ids
