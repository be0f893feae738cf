"""The one Kafka producer behind every event source (simulator, dataset replay).

Events are keyed by user_id, so one user's events stay ordered in one partition, and carry their
event time as the Kafka timestamp, so CreateTime is event time. The producer is idempotent with
acks=all: a retried batch is never written twice. Malformed payloads go raw to the events topic
(they are bad input the streaming jobs must route to the dead-letter topic themselves); replay
rows that could not be mapped go straight to the dead-letter topic.

When ``privacy.pseudonymise`` is on, this is where user ids are replaced by their pseudonyms
(``rtrec.privacy``): in events, re-sends, and malformed payloads that still name a user, so no
raw id reaches Kafka and, through it, Flink or the lake.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TextIO

from rtrec.config import Settings
from rtrec.config.settings import KafkaSettings
from rtrec.errors import RtrecError
from rtrec.privacy import Pseudonymise, pseudonymise_event, pseudonymise_payload, pseudonymiser
from rtrec.schema import encode
from rtrec.schema.events import EVENT_TS, USER_ID
from rtrec.sources import Duplicate, Event, Malformed, Record

METADATA_TIMEOUT_S = 10.0
# librdkafka's own log lines (one per reconnect attempt) go to this logger instead of stderr;
# failures reach the user once, as an RtrecError. Configure logging to see them.
KAFKA_LOG = logging.getLogger("rtrec.kafka")
KAFKA_LOG.addHandler(logging.NullHandler())

_Send = Callable[[str, bytes, bytes | None, int], None]


@dataclass
class ProduceSummary:
    """What one run delivered, by kind."""

    valid: int = 0
    duplicates: int = 0
    malformed: int = 0
    dead_lettered: int = 0
    elapsed_s: float = 0.0

    @property
    def messages(self) -> int:
        return self.valid + self.duplicates + self.malformed + self.dead_lettered

    @property
    def rate(self) -> float:
        """Messages per second."""
        return self.messages / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def describe(self) -> str:
        return (
            f"produced {self.valid:,} valid, {self.duplicates:,} duplicates, "
            f"{self.malformed:,} malformed, {self.dead_lettered:,} to DLQ "
            f"in {self.elapsed_s:.1f} s ({self.rate:,.0f} msg/s)"
        )


def produce(
    settings: Settings,
    records: Iterable[Record],
    *,
    source: str = "rtrec",
    out: TextIO | None = None,
    flush_timeout_s: float = 60.0,
) -> ProduceSummary:
    """Send ``records`` to ``settings.kafka.topics.events`` (bad rows to ``.dlq``) and wait
    until every message is acknowledged.

    ``source`` names the origin in dead-letter records (``<source>:<line>``). Progress goes to
    ``out`` (stderr by default): one updating line on a terminal, a line every
    ``settings.producer.progress_every`` messages otherwise, then a summary line. Raises
    RtrecError if Kafka is unreachable, a topic is missing, or any message was not delivered.
    """
    try:
        from confluent_kafka import Producer
    except ImportError:
        raise RtrecError("confluent-kafka is not installed: pip install 'rtrec[kafka]'") from None

    # Before connecting: a missing key is a configuration error, whatever Kafka's state.
    hide = pseudonymiser(settings)
    kafka = settings.kafka
    producer = Producer(
        {
            "bootstrap.servers": kafka.bootstrap_servers,
            "client.id": "rtrec-producer",
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": settings.producer.linger_ms,
            "batch.num.messages": settings.producer.batch_size,
            "logger": KAFKA_LOG,
        }
    )
    try:
        _require_topics(producer, kafka)
        return _send_all(producer, settings, records, hide, source, out, flush_timeout_s)
    finally:
        # Closed, not left to the garbage collector: a producer still referenced (a traceback,
        # a caller's frame) would keep reconnecting, and logging, after Kafka has gone.
        producer.close()


def _require_topics(producer: Any, kafka: KafkaSettings) -> None:
    """Raise RtrecError unless Kafka answers and has the events and dead-letter topics."""
    from confluent_kafka import KafkaException

    try:
        topics = producer.list_topics(timeout=METADATA_TIMEOUT_S).topics
    except KafkaException as exc:
        raise RtrecError(
            f"cannot reach Kafka at {kafka.bootstrap_servers} ({exc.args[0].str()}); "
            "is it running (rtrec local up)?"
        ) from None
    missing = [t for t in (kafka.topics.events, kafka.topics.dlq) if t not in topics]
    if missing:
        raise RtrecError(
            f"topic {', '.join(missing)} does not exist at {kafka.bootstrap_servers}; "
            "create the topics first (rtrec local up)"
        )


def _send_all(
    producer: Any,
    settings: Settings,
    records: Iterable[Record],
    hide: Pseudonymise,
    source: str,
    out: TextIO | None,
    flush_timeout_s: float,
) -> ProduceSummary:
    """``produce`` once Kafka is known to be there."""
    kafka = settings.kafka
    failed, first_failure = 0, ""

    def delivered(error: Any, _message: Any) -> None:
        nonlocal failed, first_failure
        if error is not None:
            failed += 1
            first_failure = first_failure or error.str()

    def send(topic: str, value: bytes, key: bytes | None, timestamp: int = 0) -> None:
        while True:
            try:
                producer.produce(topic, value, key, timestamp=timestamp, on_delivery=delivered)
                return
            except BufferError:  # the local queue is full: let deliveries drain it
                producer.poll(0.1)

    summary = ProduceSummary()
    progress = _Progress(out or sys.stderr, settings.producer.progress_every)
    started = time.monotonic()
    try:
        for record in records:
            if isinstance(record, dict):
                _send_event(send, kafka.topics.events, record, hide)
                summary.valid += 1
            elif isinstance(record, Duplicate):
                _send_event(send, kafka.topics.events, record.event, hide)
                summary.duplicates += 1
            elif isinstance(record, Malformed):
                payload = pseudonymise_payload(record.payload, hide)
                send(kafka.topics.events, payload, None, record.ts)
                summary.malformed += 1
            else:
                send(kafka.topics.dlq, record.dead_letter(source), None)
                summary.dead_lettered += 1
            producer.poll(0)
            summary.elapsed_s = time.monotonic() - started
            progress.update(summary)
    finally:
        # Deliver what was queued even when the source failed part-way, and say how far it got.
        undelivered = producer.flush(flush_timeout_s)
        summary.elapsed_s = time.monotonic() - started
        progress.finish(summary)
    if undelivered or failed:
        detail = first_failure or f"not acknowledged within {flush_timeout_s:g} s"
        raise RtrecError(
            f"{undelivered + failed} of {summary.messages} messages were not delivered: {detail}"
        )
    return summary


def _send_event(send: _Send, topic: str, event: Event, hide: Pseudonymise) -> None:
    hidden = pseudonymise_event(event, hide)
    send(topic, encode(hidden), hidden[USER_ID].encode(), event[EVENT_TS])


class _Progress:
    """A single rewritten line on a terminal; plain periodic lines in logs and pipes."""

    def __init__(self, out: TextIO, every: int) -> None:
        self.out, self.every = out, every
        self.tty = out.isatty()

    def update(self, summary: ProduceSummary) -> None:
        if summary.messages % self.every == 0:
            line = f"{summary.messages:,} messages ({summary.rate:,.0f} msg/s)"
            self.out.write(f"\r{line}\x1b[K" if self.tty else f"{line}\n")
            self.out.flush()

    def finish(self, summary: ProduceSummary) -> None:
        self.out.write(("\r\x1b[K" if self.tty else "") + summary.describe() + "\n")
        self.out.flush()
