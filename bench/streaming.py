"""Streaming benchmark: Kafka-to-Kafka throughput of the Flink jobs at the configured
parallelism, next to the raw Kafka consume rate of the same topic in the same run, and
event->feature latency at a fixed input rate.

Needs the local stack (`rtrec local up`, started here if it is not running). Every run uses
topics and a consumer group of its own. Usage:

    .venvs/app/bin/python bench/streaming.py [--phases features,cf,latency]
        [--events 200000] [--cf-events 10000] [--days 2] [--rate 1000] [--latency-s 30]
        [--env local] [--set key=value ...]
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import threading
import time
from collections import defaultdict

from cli import bench_parser, isolated
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from rtrec.config import Settings, load_settings
from rtrec.features.definitions import ENTITY_ID, EVENTS, FEATURE_GROUP, FEATURES, TOTALS_GROUP
from rtrec.launch import RunningJob, flink_job_command, start_job
from rtrec.local import up
from rtrec.producer import produce
from rtrec.sources.simulator import Simulator


def raw_consume_rate(settings: Settings, expected: int) -> float:
    """Events/s of a plain consumer reading the whole events topic (the ceiling to compare)."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "group.id": f"raw-{time.time_ns()}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([settings.kafka.topics.events])
    read, started = 0, None
    while read < expected:
        batch = consumer.consume(10_000, timeout=1.0)
        if batch and started is None:
            started = time.monotonic()
        read += len(batch)
    consumer.close()
    return expected / (time.monotonic() - (started or time.monotonic()))


def committed(settings: Settings, group: str) -> int:
    """Offsets of rtrec.events the job committed: Flink commits them with each completed
    checkpoint, after the sinks' transactions, so this counts Kafka-to-Kafka progress."""
    admin = AdminClient({"bootstrap.servers": settings.kafka.bootstrap_servers})
    topic = settings.kafka.topics.events
    partitions = admin.list_topics(topic, timeout=10).topics[topic].partitions
    consumer = Consumer({"bootstrap.servers": settings.kafka.bootstrap_servers, "group.id": group})
    offsets = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
    consumer.close()
    return sum(max(tp.offset, 0) for tp in offsets)


def job_throughput(
    settings: Settings, args: list[str], job: str, group: str, events: list[dict[str, object]]
) -> float:
    """Sustained events/s, Kafka to Kafka: the job first warms up on a small batch (Python
    workers started, state created), then the whole load is produced at once and timed until
    the job has committed all of it."""
    warmup, load = events[:1000], events[1000:]
    log = (settings.root / ".run" / "bench") / f"{job}-{group}.log"
    running = start_job(job, flink_job_command(settings, job, args), log)
    try:
        produce(settings, warmup, source="bench", out=io.StringIO())
        _wait_committed(settings, group, len(warmup), running)
        produce(settings, load, source="bench", out=io.StringIO())
        started = time.monotonic()
        _wait_committed(settings, group, len(events), running)
        return len(load) / (time.monotonic() - started)
    finally:
        running.stop()


def _wait_committed(settings: Settings, group: str, target: int, running: RunningJob) -> None:
    while committed(settings, group) < target:
        if not running.alive():
            raise SystemExit(f"{running.name} died:\n{running.tail()}")
        time.sleep(0.25)


def latency(settings: Settings, args: list[str], rate: int, seconds: int) -> list[float]:
    """Seconds from producing an event to its user's totals (read_committed) counting it."""
    log = (settings.root / ".run" / "bench") / f"latency-{settings.flink.consumer_group}.log"
    job: RunningJob = start_job(
        "behaviour_features", flink_job_command(settings, "behaviour_features", args), log
    )
    sent: dict[str, list[float]] = defaultdict(list)
    seen: list[float] = []
    stop = threading.Event()

    def watch() -> None:
        consumer = Consumer(
            {
                "bootstrap.servers": settings.kafka.bootstrap_servers,
                "group.id": f"lat-{time.time_ns()}",
                "auto.offset.reset": "latest",
                "isolation.level": "read_committed",
            }
        )
        consumer.subscribe([settings.kafka.topics.user_features])
        counted: dict[str, int] = defaultdict(int)
        while not stop.is_set():
            for message in consumer.consume(1000, timeout=0.2):
                payload = message.value()
                if message.error() or payload is None:
                    continue
                now = time.time()
                value = json.loads(payload)
                if value[FEATURE_GROUP] != TOTALS_GROUP:
                    continue
                user, total = value[ENTITY_ID], int(value[FEATURES][EVENTS])
                times = sent.get(user, [])
                for k in range(counted[user], min(total, len(times))):
                    seen.append(now - times[k])
                counted[user] = max(counted[user], total)
        consumer.close()

    watcher = threading.Thread(target=watch)
    try:
        time.sleep(25)  # the job starts and its consumer joins before timing begins
        watcher.start()
        simulator = Simulator(settings.simulator, events=rate * seconds, days=seconds / 86_400)
        events = list(simulator.events())
        start = time.time()
        for second in range(seconds):
            batch = events[second * rate : (second + 1) * rate]
            for event in batch:
                event["user_id"] = f"lat-{event['user_id']}"  # users only this phase has
            now = time.time()
            for event in batch:
                sent[event["user_id"]].append(now)
            produce(settings, batch, source="bench", out=io.StringIO())
            time.sleep(max(0.0, start + second + 1 - time.time()))
        time.sleep(10)  # the last checkpoint commits
    finally:
        stop.set()
        if watcher.is_alive():
            watcher.join()
        job.stop()
    return seen


def percentile(values: list[float], q: float) -> float:
    return (
        statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]
        if values
        else float("nan")
    )


def main() -> None:
    parser = bench_parser(__doc__ or "", events=200_000)
    parser.add_argument("--cf-events", type=int, default=10_000)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--latency-s", type=int, default=30)
    parser.add_argument(
        "--phases",
        default="features,cf,latency",
        help="which parts to run (comma-separated): features and cf are the jobs' throughput",
    )
    args = parser.parse_args()
    phases = set(args.phases.split(","))
    overrides = [*args.overrides, f"simulator.users={args.users}"]
    run = f"bench-{int(time.time())}"
    up(load_settings(args.env, overrides), report=lambda line: None)

    if phases & {"features", "cf"}:
        throughput(args, overrides, run, phases)
    if "latency" in phases:
        lat_settings, lat_args = isolated(args.env, overrides, f"{run}-lat")
        seen = latency(lat_settings, lat_args, args.rate, args.latency_s)
        print(
            f"event->feature latency   p50 {percentile(seen, 50):.2f} s"
            f"  p99 {percentile(seen, 99):.2f} s at {args.rate:,} events/s ({len(seen):,} events,"
            f" {lat_settings.flink.delivery_guarantee},"
            f" checkpoint every {lat_settings.flink.checkpoint_interval_ms} ms)"
        )


def throughput(args: argparse.Namespace, overrides: list[str], run: str, jobs: set[str]) -> None:
    """The jobs' Kafka-to-Kafka rates (``jobs``: features, cf) beside the raw consume rate of
    the same topic, and the features job's state size."""
    settings, job_args = isolated(args.env, overrides, run)
    parallelism = settings.flink.parallelism
    events = list(Simulator(settings.simulator, events=args.events, days=args.days).events())
    times = [int(e["event_ts"]) for e in events]
    span_s = (max(times) - min(times)) / 1000
    print(
        f"load: {len(events):,} events from {args.users:,} users over {span_s:,.0f} s of event"
        f" time ({len(events) / span_s:,.0f} events per event-time second)"
    )
    if "features" in jobs:
        features = job_throughput(
            settings, job_args, "behaviour_features", f"{run}-features", events
        )
    else:
        produce(settings, events, source="bench", out=io.StringIO())
    raw = raw_consume_rate(settings, len(events))
    print(f"raw Kafka consume        {raw:>10,.0f} events/s  ({len(events):,} events)")
    if "features" in jobs:
        print(
            f"behaviour_features       {features:>10,.0f} events/s"
            f"  ({features / raw:.1%} of raw, parallelism {parallelism})"
        )
        checkpoints = settings.root / ".run" / "bench" / run
        size = sum(p.stat().st_size for p in checkpoints.rglob("*") if p.is_file())
        print(
            f"  checkpoint directory   {size / 1e6:>10,.1f} MB for {args.users:,} users"
            " (retained checkpoints)"
        )
    if "cf" in jobs:
        cf_settings, cf_args = isolated(args.env, overrides, f"{run}-cf")
        cf_events = events[: args.cf_events]
        cf = job_throughput(cf_settings, cf_args, "online_cf", f"{run}-cf-cf", cf_events)
        print(
            f"online_cf                {cf:>10,.0f} events/s"
            f"  ({cf / raw:.1%} of raw, history {cf_settings.cf.history_size},"
            f" {len(cf_events):,} events)"
        )


if __name__ == "__main__":
    main()
