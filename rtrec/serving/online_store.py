"""The online store: Redis, kept equal to the upsert topics the Flink jobs write.

Kafka is the system of record for features, neighbours and CF scores; Redis holds the latest
value per key for the request path. ``run_online_store_sync`` copies committed records (read
isolation ``read_committed``, so only what a Flink checkpoint committed) and commits its Kafka
offsets only after Redis has the batch. Every write is an idempotent upsert of a whole value, so
a replay after a crash leaves the same state: effectively exactly once.

Keys: ``rtrec:user:<id>:<group>`` and ``rtrec:item:<id>:<group>`` (hashes of a feature record:
``start_ms``, ``end_ms`` and each feature), ``rtrec:item:<id>:neighbours`` and
``rtrec:user:<id>:cf`` (JSON lists of ``{item_id, score}``), and
``rtrec:user:<id>:recommendations`` (the scoring job's whole record as JSON: items with scores,
sources and reasons, model version, arm, rec_id, computed_at), and ``rtrec:ab:<version>:<arm>``
(a hash of the online A/B metrics, one JSON field per window start).

Deletes: a tombstone deletes its key, and so does an empty ranked list (online CF's record for
a user without candidates, and for a forgotten one). That is how ``rtrec privacy forget``
reaches Redis through the jobs (docs/privacy.md): whatever arrives after the command's own
deletes is a delete too, so no late record of the user's re-creates a key with old data.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from rtrec.batch.curate import RELATED
from rtrec.cf.records import NEIGHBOURS, SCORES
from rtrec.config import Settings
from rtrec.errors import RtrecError
from rtrec.features.definitions import (
    ENTITY_ID,
    FEATURE_GROUP,
    FEATURES,
    WINDOW_END,
    WINDOW_START,
)
from rtrec.schema.events import MODEL_VERSION
from rtrec.scoring.ab import ARM

PREFIX = "rtrec"
NEIGHBOURS_GROUP = "neighbours"
CF_GROUP = "cf"
RECOMMENDATIONS_GROUP = "recommendations"
BOUGHT_TOGETHER_GROUP = "bought_together"


@dataclass(frozen=True)
class Write:
    """One Redis change: set a hash, set a string, or delete (``fields`` and ``text`` None)."""

    key: str
    fields: dict[str, str] | None = None
    text: str | None = None
    replace: bool = True  # False: set these hash fields, keep the others


def store_key(entity: str, entity_id: str, group: str) -> str:
    return f"{PREFIX}:{entity}:{entity_id}:{group}"


def feature_write(entity: str, key: bytes, value: bytes | None) -> Write:
    """A feature record (key: JSON of entity id and group) as a Redis hash."""
    ids = json.loads(key)
    redis_key = store_key(entity, ids[ENTITY_ID], ids[FEATURE_GROUP])
    if value is None:  # a tombstone: the record was deleted upstream
        return Write(redis_key)
    record = json.loads(value)
    fields = {name: repr(float(v)) for name, v in record[FEATURES].items()}
    for bound in (WINDOW_START, WINDOW_END):
        if record.get(bound) is not None:
            fields[bound] = str(record[bound])
    return Write(redis_key, fields=fields)


def ranked_write(
    entity: str, group: str, list_field: str
) -> Callable[[bytes, bytes | None], Write]:
    """A ranked list (key: the raw id) as a JSON string; an empty one is no list."""

    def write(key: bytes, value: bytes | None) -> Write:
        redis_key = store_key(entity, key.decode(), group)
        ranked = None if value is None else json.loads(value)[list_field]
        if not ranked:
            return Write(redis_key)
        return Write(redis_key, text=json.dumps(ranked))

    return write


def record_write(entity: str, group: str) -> Callable[[bytes, bytes | None], Write]:
    """A whole record (key: the raw id) as its JSON string, as the topic holds it."""

    def write(key: bytes, value: bytes | None) -> Write:
        redis_key = store_key(entity, key.decode(), group)
        return Write(redis_key) if value is None else Write(redis_key, text=value.decode())

    return write


def ab_write(key: bytes, value: bytes | None) -> Write:
    """An A/B window record (key: JSON of window_start, model_version, arm) as one field of the
    hash ``rtrec:ab:<model_version>:<arm>``, named by the window start: the series per arm."""
    ids = json.loads(key)
    redis_key = f"{PREFIX}:ab:{ids[MODEL_VERSION]}:{ids[ARM]}"
    window = str(ids[WINDOW_START])
    if value is None:  # windows are final; a tombstone has nothing to remove from the series
        return Write(redis_key, replace=False)
    return Write(redis_key, fields={window: value.decode()}, replace=False)


def writers(settings: Settings) -> dict[str, Callable[[bytes, bytes | None], Write]]:
    """How each synced topic maps to Redis."""
    topics = settings.kafka.topics
    return {
        topics.user_features: lambda k, v: feature_write("user", k, v),
        topics.item_features: lambda k, v: feature_write("item", k, v),
        topics.item_neighbours: ranked_write("item", NEIGHBOURS_GROUP, NEIGHBOURS),
        topics.cf_scores: ranked_write("user", CF_GROUP, SCORES),
        topics.recommendations: record_write("user", RECOMMENDATIONS_GROUP),
        topics.ab_metrics: ab_write,
        topics.bought_together: ranked_write("item", BOUGHT_TOGETHER_GROUP, RELATED),
    }


def apply(client: Any, writes: Iterable[Write]) -> int:
    """Apply writes in one round trip (a MULTI/EXEC pipeline); returns how many."""
    pipe = client.pipeline(transaction=True)
    count = 0
    for write in writes:
        if write.replace:
            pipe.delete(write.key)
        if write.fields is not None:
            pipe.hset(write.key, mapping=write.fields)
        elif write.text is not None:
            pipe.set(write.key, write.text)
        count += 1
    pipe.execute()
    return count


def run_online_store_sync(settings: Settings, stop: threading.Event | None = None) -> None:
    """Copy the upsert topics into Redis until ``stop`` is set (or forever)."""
    import redis
    from confluent_kafka import Consumer, KafkaException

    mapping = writers(settings)
    client = redis.Redis.from_url(settings.redis.url)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise RtrecError(f"cannot reach Redis at {settings.redis.url}: {exc}") from None
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "group.id": f"{settings.flink.consumer_group}-online-store",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    consumer.subscribe(list(mapping))
    try:
        while stop is None or not stop.is_set():
            # Wait for the first message only, then take what has already arrived: consume()
            # alone waits out its timeout unless the whole batch is there, which added up to
            # that timeout to the freshness of every list.
            first = consumer.poll(0.5)
            messages = [] if first is None else [first, *consumer.consume(999, timeout=0)]
            writes = []
            for message in messages:
                if message.error() is not None:
                    raise RtrecError(f"kafka: {message.error()}")
                key = message.key()
                if key is not None:
                    writes.append(mapping[str(message.topic())](key, message.value()))
            if writes:
                apply(client, writes)
                consumer.commit(asynchronous=False)
    except KafkaException as exc:
        raise RtrecError(f"kafka at {settings.kafka.bootstrap_servers}: {exc}") from None
    finally:
        consumer.close()
        client.close()
