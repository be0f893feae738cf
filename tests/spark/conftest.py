"""One local SparkSession (with Delta, from the runtime's spark-defaults) per test session, and
the simulated Kafka arrivals both Spark twins are tested on."""

import json
import random
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from rtrec.config import Settings, load_settings
from rtrec.schema import encode
from rtrec.schema.events import EVENT_ID, EVENT_TS, USER_ID
from rtrec.schema.wire import MAX_FUTURE_MS
from rtrec.sources import Duplicate, Malformed
from rtrec.sources.simulator import Simulator

PARTITIONS = 2
JITTER_MS = 2_000  # arrival order is shuffled within buckets of this much event time
LATE = 12  # valid events that arrive after everything else, declared late by the stream


@pytest.fixture(scope="session")
def spark_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    lake = tmp_path_factory.mktemp("lake")
    return load_settings("local", [f"lake.root={lake}", f"lake.checkpoint_root={lake / '_ck'}"])


@pytest.fixture(scope="session")
def spark(spark_settings: Settings) -> Iterator[Any]:
    from pyspark.sql import SparkSession

    from rtrec.batch.session import create_spark_session

    SparkSession.builder.master("local[2]")
    session = create_spark_session(spark_settings, "tests")
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture
def lake_dir(spark_settings: Settings, request: pytest.FixtureRequest) -> Path:
    return Path(spark_settings.lake.root) / request.node.name


@dataclass(frozen=True)
class Arrival:
    """One record of rtrec.events as Kafka holds it."""

    payload: bytes
    partition: int
    offset: int
    kafka_ts: int  # epoch ms; the producer sends the event time


@dataclass(frozen=True)
class Traffic:
    arrivals: list[Arrival]
    late: set[tuple[int, int]]  # the coordinates in the stream's ledger
    resent: set[str]  # event ids sent more than once


def partition_of(user_id: str) -> int:
    # The producer keys by user_id: a user's events, re-sends included, share a partition.
    return zlib.crc32(user_id.encode()) % PARTITIONS


def simulate(settings: Settings) -> Traffic:
    """1 500 events over two days, shuffled within ``JITTER_MS``, 40 re-sends, 25 malformed
    payloads, one event from the future and ``LATE`` arriving after everything else."""
    simulator = Simulator(settings.simulator, events=1500, duplicates=40, malformed=25, days=2)
    records = list(simulator.stream())
    rng = random.Random(5)
    resent = {r.event[EVENT_ID] for r in records if isinstance(r, Duplicate)}
    fresh = [r for r in records if isinstance(r, dict) and r[EVENT_ID] not in resent]
    late_ids = {r[EVENT_ID] for r in rng.sample(fresh, LATE)}
    sends: list[tuple[tuple[int, float], bytes, str | None, int]] = []
    for record in records:
        if isinstance(record, Malformed):
            payload, user, ts = record.payload, None, record.ts
        else:
            event = record.event if isinstance(record, Duplicate) else record
            payload, user, ts = encode(event), event[USER_ID], event[EVENT_TS]
        # Out of order within a bucket; a late event arrives after everything else.
        late = isinstance(record, dict) and record[EVENT_ID] in late_ids
        sends.append(((2 if late else 1, ts // JITTER_MS + rng.random()), payload, user, ts))
    # A valid event sent more than MAX_FUTURE_MS ahead of its Kafka timestamp: rejected.
    future = {**fresh[0], EVENT_ID: "from-the-future"}
    sends.append(((1, 0.0), encode(future), future[USER_ID], future[EVENT_TS] - MAX_FUTURE_MS - 1))
    offsets = [0] * PARTITIONS
    arrivals, late_coordinates = [], set()
    for _, payload, user, ts in sorted(sends, key=lambda send: send[0]):
        partition = partition_of(user) if user else rng.randrange(PARTITIONS)
        arrival = Arrival(payload, partition, offsets[partition], ts)
        offsets[partition] += 1
        arrivals.append(arrival)
        if user and json.loads(payload)[EVENT_ID] in late_ids:
            late_coordinates.add((arrival.partition, arrival.offset))
    assert len(late_coordinates) == LATE
    return Traffic(arrivals, late_coordinates, resent)


def bronze_frame(spark: Any, arrivals: Iterable[Arrival]) -> Any:
    """Bronze rows of ``arrivals``, made by the ingest job's own transformation."""
    from pyspark.sql import functions as F

    from rtrec.batch.ingest import to_bronze

    kafka = spark.createDataFrame(
        [(a.payload, a.partition, a.offset, a.kafka_ts) for a in arrivals],
        "value binary, partition int, offset long, ts_ms long",
    ).select("value", "partition", "offset", F.timestamp_millis("ts_ms").alias("timestamp"))
    return to_bronze(kafka)


@dataclass(frozen=True)
class TrainingData:
    """A small time split of simulated traffic with its item side features, for the tests that
    compare distributed training with one process."""

    split: Any  # rtrec.training.data.Split
    categories: list[int]
    buckets: list[int]


@pytest.fixture(scope="session")
def training_data() -> TrainingData:
    from rtrec.training.data import item_side_features, split_at_share, time_split, user_steps

    settings = load_settings("local", ["simulator.users=800"])
    events = list(Simulator(settings.simulator, events=20_000, days=30).events())
    steps = user_steps(events)
    split = time_split(steps, split_at_share(steps, 0.2))
    categories, buckets, _ = item_side_features(split.vocabulary, events)
    return TrainingData(split, categories, buckets)
