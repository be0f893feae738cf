"""`make demo`: the whole platform on the local stack, from simulated shoppers to a hot swap.

The streaming side starts at once: the Flink jobs ``behaviour_features``, ``online_cf`` and
``scoring``, the online-store sync (Redis) and the API with its dashboard, while simulated
shoppers stream into Kafka. After ``train_after_s`` of traffic the lake side runs once: Spark
``ingest`` (available-now) → ``curate`` → ``publish_bought_together`` → ``train``, which
registers a model version in MLflow; the demo then promotes it (``rtrec models promote``) and
the running scoring job swaps to it, which the screen shows from the committed lists' version
stamps. Every figure on the screen is read back from the real systems.

It stops on Ctrl-C, after ``duration_s``, or when ``rtrec local down`` (another terminal)
signals it through ``demo.pid`` in the services' run directory.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from rtrec.config import Settings
from rtrec.errors import RtrecError
from rtrec.features.definitions import ENTITY_ID, EVENTS, FEATURE_GROUP, FEATURES, TOTALS_GROUP
from rtrec.launch import (
    RunningJob,
    app_job_command,
    config_args,
    flink_job_command,
    spark_job_command,
    start_job,
)

REFRESH_S = 2.0
FLINK_JOBS = ("behaviour_features", "online_cf", "scoring")
# The lake side's one pass, in order; each ends by itself (ingest reads what is in Kafka now).
LAKE_STEPS = ("ingest", "curate", "publish_bought_together", "train")
STEP_TIMEOUT_S = 900.0
REGISTERED = re.compile(r"registered (\S+) version (\d+); gate: (.*)")
LATENCIES_KEPT = 500


@dataclass
class Step:
    name: str
    state: str = "waiting"  # waiting, running, done, failed
    started: float | None = None
    ended: float | None = None
    detail: str = ""

    def line(self) -> str:
        mark = {"waiting": " ", "running": ">", "done": "x", "failed": "!"}[self.state]
        took = ""
        if self.started is not None:
            took = f"{(self.ended or time.monotonic()) - self.started:6.1f} s"
        return f"  [{mark}] {self.name:<34} {took:>9}  {self.detail}"


@dataclass
class Observed:
    """What the demo has read back so far, and where its lake pass stands."""

    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    dead_letters: int = 0
    produced: int = 0
    items_with_neighbours: set[str] = field(default_factory=set)
    lists: Counter[str] = field(default_factory=Counter)  # committed lists per model version
    latencies_ms: deque[int] = field(default_factory=lambda: deque(maxlen=LATENCIES_KEPT))
    first_seen: dict[str, float] = field(default_factory=dict)  # version -> monotonic time
    last_seen: dict[str, float] = field(default_factory=dict)
    steps: list[Step] = field(default_factory=list)
    promoted: tuple[str, str | None, float] | None = None  # (new, replaced, monotonic time)
    failure: str | None = None


def run_demo(
    settings: Settings,
    env: str,
    overrides: Sequence[str],
    rate: int,
    duration_s: float | None = None,
    keep_services: bool = False,
    train_after_s: float = 60.0,
    epochs: int = 3,
    out: TextIO = sys.stdout,
) -> Observed:
    """Run until Ctrl-C, ``duration_s`` or ``rtrec local down``; stop the jobs and, unless kept
    or already being stopped by ``rtrec local down``, the services."""
    from rtrec.local import down, up
    from rtrec.local.stack import DEMO_PID

    if settings.local_services is None:
        raise RtrecError(f"the demo runs on the local stack; --env {env} has no local_services")
    run_dir = settings.local_services.run_dir
    observed = Observed(steps=[Step("services: Kafka, MLflow, Redis")])
    services = observed.steps[0]
    services.state, services.started = "running", time.monotonic()
    up(settings, report=lambda line: print(line, file=out))
    services.state, services.ended = "done", time.monotonic()

    stopped_by_down = threading.Event()
    pid_file = run_dir / DEMO_PID
    pid_file.write_text(str(os.getpid()))
    previous_handler = signal.signal(signal.SIGTERM, _interrupt(stopped_by_down))
    # Ctrl-C stops the demo even when it was started from a shell that ignores SIGINT in
    # background jobs (Python then never installs its own handler).
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)

    logs = run_dir / "jobs"
    args = config_args(env, overrides)
    jobs: list[RunningJob] = []
    lake_jobs: list[RunningJob] = []  # the one running lake step, so Ctrl-C stops it too
    stop = threading.Event()
    threads: list[threading.Thread] = []
    try:
        streaming = Step("Flink jobs, online-store sync, API")
        streaming.state, streaming.started = "running", time.monotonic()
        observed.steps.append(streaming)
        for job in FLINK_JOBS:
            command = flink_job_command(settings, job, args)
            jobs.append(start_job(f"flink {job}", command, logs / f"{job}.log"))
        for job in ("online_store", "api"):
            jobs.append(start_job(job, app_job_command(settings, job, args), logs / f"{job}.log"))
        streaming.detail = ", ".join(job.name for job in jobs)
        observed.steps += [Step(f"lake: {name}") for name in LAKE_STEPS]
        observed.steps.append(Step("promote the new version, watch the swap"))
        threads = [
            threading.Thread(target=_produce, args=(settings, rate, observed, stop), daemon=True),
            threading.Thread(
                target=_lake_pass,
                args=(settings, args, epochs, train_after_s, observed, lake_jobs, logs, stop),
                daemon=True,
            ),
        ]
        for thread in threads:
            thread.start()
        header = _header(settings, rate, logs, keep_services)
        print(f"\n{header}\n", file=out, flush=True)
        streaming.state, streaming.ended = "done", time.monotonic()
        deadline = None if duration_s is None else time.monotonic() + duration_s
        _watch(settings, jobs, observed, deadline, header, out)
    except KeyboardInterrupt:
        print("\nstopping ...", file=out, flush=True)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
        for running in [*lake_jobs, *jobs]:
            running.stop()
        pid_file.unlink(missing_ok=True)
        signal.signal(signal.SIGTERM, previous_handler)
        signal.signal(signal.SIGINT, previous_int)
        # `rtrec local down` stops the services itself once the demo has exited.
        if not keep_services and not stopped_by_down.is_set():
            down(settings, report=lambda line: print(line, file=out))
    if observed.failure is not None:
        raise RtrecError(observed.failure)
    return observed


def _interrupt(stopped_by_down: threading.Event) -> Any:
    def handler(_signum: int, _frame: Any) -> None:
        stopped_by_down.set()
        raise KeyboardInterrupt

    return handler


def _header(settings: Settings, rate: int, logs: Path, keep_services: bool) -> str:
    serving = settings.serving
    # A read key in the URL, so the link opens a working page (local development keys only).
    keys = [os.environ.get(k.env) or k.key for k in serving.api_keys.values() if "read" in k.scopes]
    key = next((f"?key={k}" for k in keys if k), "")
    return (
        f"dashboard:  http://{serving.host}:{serving.port}/dashboard{key}\n"
        f"API:        http://{serving.host}:{serving.port}/docs\n"
        f"MLflow UI:  {settings.mlflow.tracking_uri}\n"
        f"~{rate} simulated events/s into {settings.kafka.topics.events}; job logs in {logs}\n"
        f"Ctrl-C (or `rtrec local down` elsewhere) stops the demo"
        f"{'' if keep_services else ' and the services'}."
    )


def _produce(settings: Settings, rate: int, observed: Observed, stop: threading.Event) -> None:
    """Simulated shoppers as live traffic (1% re-sends, 1% malformed): a day of sessions that
    starts now, each event sent when the wall clock reaches its event time, so the watermark
    follows the clock and nothing arrives late."""
    from rtrec.producer import produce
    from rtrec.schema.events import EVENT_TS
    from rtrec.sources import Record
    from rtrec.sources.simulator import Simulator

    now = settings.simulator.model_copy(update={"start_ts_ms": int(time.time() * 1000)})
    events = rate * 86_400
    simulator = Simulator(
        now, events=events, duplicates=events // 100, malformed=events // 100, days=1.0
    )

    def on_the_clock(records: Iterator[Record]) -> Iterator[Record]:
        # Each event waits for the wall clock to reach its event time: pacing from the first
        # event (``rtrec.sources.paced``) would send everything early by however long after
        # the simulated day's start the first session began, and event -> list would go
        # negative. Re-sends and malformed records pass at once.
        for record in records:
            if isinstance(record, dict):
                while not stop.is_set() and (due := record[EVENT_TS] / 1000 - time.time()) > 0:
                    stop.wait(min(due, 0.5))
            if stop.is_set():
                return
            observed.produced += 1
            yield record

    produce(settings, on_the_clock(simulator.stream()), source="demo", out=io.StringIO())


def _lake_pass(
    settings: Settings,
    args: list[str],
    epochs: int,
    train_after_s: float,
    observed: Observed,
    running: list[RunningJob],
    logs: Path,
    stop: threading.Event,
) -> None:
    """After ``train_after_s`` of traffic: the Spark jobs once, then promote what train
    registered. A failure is recorded for the screen and ends the demo."""
    from rtrec.registry.promotion import promote

    if stop.wait(train_after_s):
        return
    steps = {step.name.removeprefix("lake: "): step for step in observed.steps}
    job_args = [*args, "--set", "lake.ingest_trigger=available_now"]
    job_args += ["--set", f"training.epochs={epochs}"]
    try:
        for name in LAKE_STEPS:
            step = steps[name]
            step.state, step.started = "running", time.monotonic()
            log = logs / f"{name}.log"
            job = start_job(f"spark {name}", spark_job_command(settings, name, job_args), log)
            running.append(job)
            while job.alive() and time.monotonic() - step.started < STEP_TIMEOUT_S:
                if stop.wait(0.5):
                    return
            running.remove(job)
            if job.alive() or job.process.returncode != 0:
                job.stop()
                step.state, step.ended = "failed", time.monotonic()
                raise RtrecError(f"spark {name} failed; see {log}:\n{job.tail()}")
            step.state, step.ended = "done", time.monotonic()
        registered = REGISTERED.findall(Path(logs / "train.log").read_text())
        if not registered:
            raise RtrecError(f"train registered no version; see {logs / 'train.log'}")
        model, version, gate = registered[-1]
        steps["train"].detail = f"{model} v{version}, gate: {gate}"[:60]
        promotion = observed.steps[-1]
        promotion.state, promotion.started = "running", time.monotonic()
        replaced = _champion(settings)
        promote(settings, version)
        observed.promoted = (version, replaced, time.monotonic())
        promotion.detail = f"champion {replaced or '(none)'} -> v{version}"
    except RtrecError as exc:
        observed.failure = str(exc)


def _champion(settings: Settings) -> str | None:
    from rtrec.registry.promotion import list_versions

    current = [row.version for row in list_versions(settings) if "champion" in row.aliases]
    return current[0] if current else None


def _watch(
    settings: Settings,
    jobs: list[RunningJob],
    observed: Observed,
    deadline: float | None,
    header: str,
    out: TextIO,
) -> None:
    from confluent_kafka import Consumer

    from rtrec.cf.records import NEIGHBOURS
    from rtrec.schema.events import EVENT_TS, ITEM_ID, MODEL_VERSION
    from rtrec.streaming.scoring import COMPUTED_AT

    topics = settings.kafka.topics
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "group.id": f"rtrec-demo-{time.time_ns()}",
            "auto.offset.reset": "latest",
            "enable.auto.commit": False,
            # What consumers of the exactly-once jobs' topics see: committed transactions.
            "isolation.level": "read_committed",
        }
    )
    consumer.subscribe(
        [topics.user_features, topics.dlq, topics.item_neighbours, topics.recommendations]
    )
    try:
        while deadline is None or time.monotonic() < deadline:
            refresh_at = time.monotonic() + REFRESH_S
            while time.monotonic() < refresh_at:
                for message in consumer.consume(500, timeout=0.2):
                    value = message.value()
                    if message.error() is not None or value is None:
                        continue
                    topic = message.topic()
                    if topic == topics.dlq:
                        observed.dead_letters += 1
                        continue
                    record = json.loads(value)
                    if topic == topics.user_features and record[FEATURE_GROUP] == TOTALS_GROUP:
                        observed.users[record[ENTITY_ID]] = record[FEATURES]
                    elif topic == topics.item_neighbours and record.get(NEIGHBOURS):
                        observed.items_with_neighbours.add(record[ITEM_ID])
                    elif topic == topics.recommendations:
                        version = str(record[MODEL_VERSION])
                        seen = time.monotonic()
                        observed.lists[version] += 1
                        observed.first_seen.setdefault(version, seen)
                        observed.last_seen[version] = seen
                        observed.latencies_ms.append(record[COMPUTED_AT] - record[EVENT_TS])
            for job in jobs:
                if not job.alive():
                    raise RtrecError(f"{job.name} stopped; last lines of {job.log}:\n{job.tail()}")
            if observed.failure is not None:
                return
            promotion = observed.steps[-1]
            if swapped(observed) and promotion.state == "running":
                promotion.state, promotion.ended = "done", time.monotonic()
            screen = _screen(observed, _bronze_rows(settings))
            if out.isatty():  # redraw in place on a terminal; append in logs and pipes
                screen = f"\x1b[2J\x1b[H{header}\n\n{screen}"
            print(screen, file=out, flush=True)
    finally:
        consumer.close()


def _bronze_rows(settings: Settings) -> int | None:
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    try:
        table = DeltaTable(settings.lake.table_path("bronze", "events"))
    except TableNotFoundError:
        return None  # the ingest job has not committed yet
    return int(table.to_pyarrow_dataset().count_rows())


def swap_line(observed: Observed) -> str:
    """Where the swap stands: the new version's first committed list and the old one's last,
    counted from the promotion."""
    if observed.promoted is None:
        return "  swap: not promoted yet"
    new, replaced, at = observed.promoted
    old = replaced or "none"
    first = observed.first_seen.get(new)
    if first is None:
        return f"  swap: v{new} promoted; waiting for its first list"
    last_old = observed.last_seen.get(old)
    after = f", last of {old} at {last_old - at:+.1f} s" if last_old is not None else ""
    return f"  swap: v{new} promoted; its first list at {first - at:+.1f} s{after}"


def swapped(observed: Observed) -> bool:
    return observed.promoted is not None and observed.promoted[0] in observed.first_seen


def _screen(observed: Observed, bronze_rows: int | None) -> str:
    counted = sum(int(row[EVENTS]) for row in observed.users.values())
    latencies = sorted(observed.latencies_ms)
    fresh = "no lists yet"
    if latencies:
        p50 = latencies[len(latencies) // 2]
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        fresh = f"p50 {p50} ms, p99 {p99} ms (last {len(latencies)} lists)"
    versions = ", ".join(f"{v}: {n:,}" for v, n in sorted(observed.lists.items())) or "none yet"
    lines = [
        time.strftime("%H:%M:%S"),
        *(step.line() for step in observed.steps),
        "",
        f"  produced to Kafka      {observed.produced:>10,}",
        f"  counted by Flink       {counted:>10,}  over {len(observed.users):,} users"
        " (updates seen since the demo started)",
        f"  dead-lettered          {observed.dead_letters:>10,}",
        f"  items with neighbours  {len(observed.items_with_neighbours):>10,}",
        f"  rows in bronze.events  {bronze_rows if bronze_rows is not None else 'not yet':>10}",
        f"  recommendation lists   by model version: {versions}",
        f"  event -> list          {fresh}",
        swap_line(observed),
    ]
    return "\n".join(lines) + "\n"
