"""The real local services (Kafka, MLflow, Redis) for integration tests, once per session.

Every port is a free one and every path (service data, lake, checkpoints) is under the
session's temporary directory, so a test session never touches a developer's `rtrec local`
stack or another session's.
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from rtrec.cf.records import SCORE
from rtrec.config import Settings, load_settings
from rtrec.features.definitions import ENTITY_ID, FEATURE_GROUP, FEATURES, TOTALS_GROUP
from rtrec.launch import RunningJob
from rtrec.local import State, down, ensure_topics, status, up
from rtrec.local.daemons import free_ports
from rtrec.local.process import group_members, pid_alive
from rtrec.local.spark_cluster import SparkCluster, start_spark_cluster
from rtrec.producer import produce
from rtrec.schema.events import ITEM_ID
from rtrec.sources import Duplicate, Malformed


@dataclass(frozen=True)
class Stack:
    """Settings of the running local services, and the ``--set`` values that produce them."""

    settings: Settings
    overrides: list[str]

    def set_args(self) -> list[str]:
        """The overrides as ``--set key=value`` arguments for a CLI or job subprocess."""
        return [arg for override in self.overrides for arg in ("--set", override)]

    def isolated(self, prefix: str) -> tuple[Settings, list[str]]:
        """Settings with topics of their own (``<prefix>.<topic>``, created), so one test's
        events never enter another's results, and the job arguments that reproduce them."""
        fields = type(self.settings.kafka.topics).model_fields
        topics = [f"kafka.topics.{field}={prefix}.{field}" for field in fields]
        settings = load_settings("local", [*self.overrides, *topics])
        ensure_topics(settings)
        args = ["--env", "local", *self.set_args()]
        return settings, [*args, *(arg for topic in topics for arg in ("--set", topic))]


def stack_overrides(base: Path) -> list[str]:
    """``--set`` values for a stack on free ports with everything under ``base``."""
    kafka, controller, mlflow, redis = free_ports(4)
    return [
        f"local_services.run_dir={base / 'services'}",
        f"local_services.kafka.port={kafka}",
        f"local_services.kafka.controller_port={controller}",
        f"local_services.mlflow.port={mlflow}",
        f"local_services.redis.port={redis}",
        f"kafka.bootstrap_servers=127.0.0.1:{kafka}",
        f"mlflow.tracking_uri=http://127.0.0.1:{mlflow}",
        f"redis.url=redis://127.0.0.1:{redis}/0",
        f"lake.root={base / 'lake'}",
        f"lake.checkpoint_root={base / 'checkpoints' / 'spark'}",
        f"flink.checkpoint_dir={base / 'checkpoints' / 'flink'}",
    ]


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Kafka (topics created), MLflow and Redis, up for the session; down and verified after."""
    overrides = stack_overrides(tmp_path_factory.mktemp("stack"))
    settings = load_settings("local", overrides)
    pids: list[int] = []
    try:
        pids = [s.pid for s in up(settings, report=print) if s.pid is not None]
        yield Stack(settings, overrides)
    finally:
        down(settings, report=print)
        assert [s.state for s in status(settings)] == [State.STOPPED] * 3
        # Each service leads its own process group; nothing of it may outlive `down`.
        left = {pid: group_members(pid) for pid in pids if pid_alive(pid) or group_members(pid)}
        assert not left, f"processes left after down: {left}"


@pytest.fixture(scope="session")
def spark_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkCluster]:
    """A Spark standalone cluster on loopback for the session: a master and two workers of one
    core and 1 GB each, logs and scratch space under the session's temporary directory;
    stopped after, and nothing of it may be left (``stop`` raises otherwise)."""
    cluster = start_spark_cluster(load_settings("local"), tmp_path_factory.mktemp("spark-cluster"))
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def unstarted_overrides(tmp_path: Path) -> list[str]:
    """``--set`` values for a second stack (free ports, paths under tmp_path), not started."""
    return stack_overrides(tmp_path)


@pytest.fixture
def redis_client(stack: Stack) -> Iterator[Any]:
    """A client on the stack's Redis with an empty database (function-scoped)."""
    import redis

    client = redis.Redis.from_url(stack.settings.redis.url)
    client.flushdb()
    yield client
    client.close()


def consume_all(bootstrap: str, topic: str, idle_s: float = 3.0) -> Iterator[Any]:
    """Every committed message on ``topic`` from the beginning, until nothing arrives for
    ``idle_s``. The jobs write in transactions: what an aborted one wrote is not there."""
    from confluent_kafka import Consumer

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-{topic}-{time.monotonic_ns()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    assigned = False

    def on_assign(_consumer: Any, _partitions: Any) -> None:
        nonlocal assigned
        assigned = True

    # The idle clock starts once the group owns the partitions: on a busy machine joining a
    # fresh group can alone take longer than idle_s.
    consumer.subscribe([topic], on_assign=on_assign)
    try:
        joining_until = time.monotonic() + 30.0
        last = time.monotonic()
        while time.monotonic() - last < idle_s:
            if not assigned and time.monotonic() < joining_until:
                last = time.monotonic()
            for message in consumer.consume(1000, timeout=0.5):
                assert message.error() is None, message.error()
                last = time.monotonic()
                yield message
    finally:
        consumer.close()


Lists = dict[str, list[tuple[str, float]]]  # key -> ranked (item, score), best first


def latest_ranked(settings: Settings, topic: str, column: str) -> Lists:
    """The latest committed list per key of an upsert topic of ranked (item, score) lists:
    ``rtrec.item_neighbours`` or ``rtrec.cf_scores``. An empty list (a user whose candidates
    all left) is no record, as in gold."""
    latest: Lists = {}
    # A local broker serves what is committed at once; a short idle wait polls faster.
    for message in consume_all(settings.kafka.bootstrap_servers, topic, idle_s=1.0):
        key = message.key().decode()
        value = None if message.value() is None else json.loads(message.value())[column]
        if value:
            latest[key] = [(entry[ITEM_ID], entry[SCORE]) for entry in value]
        else:
            latest.pop(key, None)
    return latest


def assert_same_rankings(
    streamed: Mapping[str, Sequence[tuple[str, float]]],
    expected: Mapping[str, Sequence[tuple[str, float]]],
    rel: float = 1e-9,
) -> None:
    """Same keys, and the same members in the same order; scores within a relative ``rel``."""
    assert streamed.keys() == expected.keys()
    assert {k: [m for m, _ in v] for k, v in streamed.items()} == {
        k: [m for m, _ in v] for k, v in expected.items()
    }
    off = [
        (key, a, b)
        for key in expected
        for (_, a), (_, b) in zip(streamed[key], expected[key], strict=True)
        if not math.isclose(a, b, rel_tol=rel)
    ]
    assert not off, f"{len(off)} scores differ, e.g. {off[:3]}"


def latest_records(
    bootstrap: str, topic: str, groups: Collection[str]
) -> dict[tuple[str, str], dict[str, Any]]:
    """The compacted view of an upsert feature topic, for the feature groups ``groups``: the
    last record per (entity, group)."""
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for message in consume_all(bootstrap, topic):
        key = json.loads(message.key())
        if key[FEATURE_GROUP] not in groups:
            continue
        if message.value() is None:  # a tombstone
            latest.pop((key[ENTITY_ID], key[FEATURE_GROUP]), None)
        else:
            latest[(key[ENTITY_ID], key[FEATURE_GROUP])] = json.loads(message.value())
    return latest


def latest_values(bootstrap: str, topic: str) -> dict[bytes, Any]:
    """The compacted view of an upsert topic: the last value per raw key (tombstones drop it)."""
    latest: dict[bytes, Any] = {}
    for message in consume_all(bootstrap, topic):
        if message.value() is None:
            latest.pop(message.key(), None)
        else:
            latest[message.key()] = json.loads(message.value())
    return latest


def latest_totals(bootstrap: str, topic: str) -> dict[str, dict[str, float]]:
    """The last ``totals`` features per user on an upsert feature topic."""
    latest = latest_records(bootstrap, topic, [TOTALS_GROUP])
    return {user: record[FEATURES] for (user, _), record in latest.items()}


def wait_for(
    condition: Callable[[], bool],
    what: str,
    job: RunningJob | Sequence[RunningJob],
    timeout_s: float,
) -> None:
    """Poll ``condition`` until it holds; fail at once if a job dies, or after ``timeout_s``."""
    jobs = [job] if isinstance(job, RunningJob) else list(job)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        for running in jobs:
            assert running.alive(), f"{running.name} died:\n{running.tail()}"
        time.sleep(2)
    tails = "\n".join(running.tail() for running in jobs)
    raise AssertionError(f"timed out waiting for {what}:\n{tails}")


def shuffled(records: list[Any], seed: int = 5) -> list[Any]:
    """Arrival order shuffled within 3 s event-time buckets, re-sends kept where they fell."""
    rng = random.Random(seed)

    def ts(record: Any) -> int:
        if isinstance(record, Malformed):
            return record.ts
        return int((record.event if isinstance(record, Duplicate) else record)["event_ts"])

    return sorted(records, key=lambda r: (ts(r) // 3000, rng.random()))


def send_slowly(settings: Settings, records: list[Any]) -> None:
    """``records`` to Kafka in 20 batches 0.2 s apart (about 4 s)."""
    step = max(1, len(records) // 20)
    for start in range(0, len(records), step):
        produce(settings, records[start : start + step], source="test")
        time.sleep(0.2)


def kill_while_sending(settings: Settings, job: RunningJob, records: list[Any]) -> None:
    """Send ``records`` with ``send_slowly`` and SIGKILL ``job`` two seconds in; returns once
    all are sent."""
    sender = threading.Thread(target=send_slowly, args=(settings, records))
    sender.start()
    time.sleep(2)
    job.process.kill()  # the Python client ...
    job.stop(timeout_s=0)  # ... and the mini-cluster JVM in its process group
    sender.join()
