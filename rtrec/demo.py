"""`make demo`: the local stack, the streaming and lake jobs, simulated shoppers, live counts.

Everything it shows is read back from the real systems: per-user features from the upsert
topic the Flink job writes, dead letters from the DLQ topic, bronze rows from the Delta table.
"""

from __future__ import annotations

import io
import json
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from rtrec.config import Settings
from rtrec.errors import RtrecError
from rtrec.features.definitions import ENTITY_ID, EVENTS, FEATURE_GROUP, FEATURES, TOTALS_GROUP
from rtrec.launch import RunningJob, config_args, flink_job_command, spark_job_command, start_job

REFRESH_S = 2.0


@dataclass
class Observed:
    """What the demo has read back so far."""

    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    dead_letters: int = 0
    produced: int = 0


def run_demo(
    settings: Settings,
    env: str,
    overrides: Sequence[str],
    rate: int,
    duration_s: float | None = None,
    keep_services: bool = False,
    out: TextIO = sys.stdout,
) -> Observed:
    """Run until Ctrl-C (or ``duration_s``); stop the jobs and, unless kept, the services."""
    from rtrec.local import down, up

    if settings.local_services is None:
        raise RtrecError(f"the demo runs on the local stack; --env {env} has no local_services")
    up(settings, report=lambda line: print(line, file=out))
    logs = settings.local_services.run_dir / "jobs"
    args = config_args(env, overrides)
    jobs = [
        start_job(
            "flink behaviour_features",
            flink_job_command(settings, "behaviour_features", args),
            logs / "behaviour_features.log",
        ),
        start_job("spark ingest", spark_job_command(settings, "ingest", args), logs / "ingest.log"),
    ]
    observed = Observed()
    stop = threading.Event()
    producer = threading.Thread(target=_produce, args=(settings, rate, observed, stop), daemon=True)
    banner = (
        f"streaming ~{rate} simulated events/s into {settings.kafka.topics.events}; "
        f"job logs in {logs}\nMLflow UI: {settings.mlflow.tracking_uri}\n"
        f"Ctrl-C stops the demo{'' if keep_services else ' and the services'}"
        f" (services alone: `make down`)."
    )
    print(f"\n{banner}\n", file=out)
    producer.start()
    deadline = None if duration_s is None else time.monotonic() + duration_s
    try:
        _watch(settings, jobs, observed, deadline, banner, out)
    except KeyboardInterrupt:
        print("\nstopping ...", file=out)
    finally:
        stop.set()
        producer.join(timeout=10)
        for job in jobs:
            job.stop()
        if not keep_services:
            down(settings, report=lambda line: print(line, file=out))
    return observed


def _produce(settings: Settings, rate: int, observed: Observed, stop: threading.Event) -> None:
    """Simulated shoppers as live traffic (1% re-sends, 1% malformed): a day of sessions that
    starts now, each event sent when the wall clock reaches its event time, so the watermark
    follows the clock and nothing arrives late."""
    from rtrec.producer import produce
    from rtrec.sources import Record, paced
    from rtrec.sources.simulator import Simulator

    now = settings.simulator.model_copy(update={"start_ts_ms": int(time.time() * 1000)})
    events = rate * 86_400
    simulator = Simulator(
        now, events=events, duplicates=events // 100, malformed=events // 100, days=1.0
    )

    def until_stopped(records: Iterator[Record]) -> Iterator[Record]:
        for record in records:
            if stop.is_set():
                return
            observed.produced += 1
            yield record

    produce(
        settings, until_stopped(paced(simulator.stream(), 1.0)), source="demo", out=io.StringIO()
    )


def _watch(
    settings: Settings,
    jobs: list[RunningJob],
    observed: Observed,
    deadline: float | None,
    banner: str,
    out: TextIO,
) -> None:
    from confluent_kafka import Consumer

    topics = settings.kafka.topics
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "group.id": f"rtrec-demo-{time.time_ns()}",
            "auto.offset.reset": "latest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topics.user_features, topics.dlq])
    try:
        while deadline is None or time.monotonic() < deadline:
            refresh_at = time.monotonic() + REFRESH_S
            while time.monotonic() < refresh_at:
                for message in consumer.consume(500, timeout=0.2):
                    if message.error() is not None:
                        continue
                    value = message.value()
                    if message.topic() == topics.dlq:
                        observed.dead_letters += 1
                    elif value is not None:
                        record = json.loads(value)
                        if record[FEATURE_GROUP] == TOTALS_GROUP:
                            observed.users[record[ENTITY_ID]] = record[FEATURES]
            for job in jobs:
                if not job.alive():
                    raise RtrecError(f"{job.name} stopped; last lines of {job.log}:\n{job.tail()}")
            screen = _screen(observed, _bronze_rows(settings))
            if out.isatty():  # redraw in place on a terminal; append in logs and pipes
                screen = f"\x1b[2J\x1b[H{banner}\n\n{screen}"
            print(screen, file=out, flush=True)
    finally:
        consumer.close()


def _bronze_rows(settings: Settings) -> int | None:
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    try:
        table = DeltaTable(settings.lake.table_path("bronze", "events"))
    except TableNotFoundError:
        return None  # the ingest job has not committed its first micro-batch yet
    return int(table.to_pyarrow_dataset().count_rows())


def _screen(observed: Observed, bronze_rows: int | None) -> str:
    counted = sum(int(row[EVENTS]) for row in observed.users.values())
    top = sorted(observed.users.items(), key=lambda kv: -kv[1][EVENTS])[:5]
    lines = [
        time.strftime("%H:%M:%S"),
        f"  produced to Kafka      {observed.produced:>10,}",
        f"  counted by Flink       {counted:>10,}  over {len(observed.users):,} users"
        " (updates seen since the demo started)",
        f"  dead-lettered          {observed.dead_letters:>10,}",
        f"  rows in bronze.events  {bronze_rows if bronze_rows is not None else 'starting':>10}",
        "  busiest users: "
        + ", ".join(
            f"{user} {row[EVENTS]:.0f} ({row['view_count']:.0f}v/{row['purchase_count']:.0f}p)"
            for user, row in top
        ),
    ]
    return "\n".join(lines) + "\n"
