"""Hot-swap benchmark: from the champion alias moving (``rtrec models promote``) to the last list
the old version scores, while events flow at a steady rate.

Needs the local stack (`rtrec local up`, started here if it is not running). Registers two small
SASRec versions under a model of this run (scripts/register_sasrec.py, in the spark runtime),
starts the scoring job on topics of this run with the first as champion, sends ``--rate``
events/s, promotes the second after ``--before`` seconds, and watches rtrec.recommendations
(committed lists only, as consumers see them). Prints when the last old-version list and the
first new-version list became visible, counted from the promotion. Usage:

    .venvs/app/bin/python bench/swap.py [--rate 200] [--before 15] [--after 20]
        [--env local] [--set key=value ...]
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import threading
import time
from pathlib import Path

from cli import config_parser, isolated

from rtrec.config import Settings, load_settings
from rtrec.launch import flink_job_command, runtime_bin, start_job
from rtrec.local import up
from rtrec.producer import produce
from rtrec.registry.mlflow_registry import CHAMPION
from rtrec.registry.promotion import promote
from rtrec.schema.events import EVENT_ID, EVENT_TYPE, MODEL_VERSION
from rtrec.sources.simulator import Simulator
from rtrec.streaming.scoring import TRIGGERS

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = config_parser(__doc__ or "")
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--before", type=float, default=15.0)
    parser.add_argument("--after", type=float, default=20.0)
    args = parser.parse_args()
    run = f"bench-swap-{os.getpid()}"
    up(load_settings(args.env, args.overrides), report=lambda line: None)
    settings, job_args = isolated(args.env, args.overrides, run, [f"mlflow.model_name={run}"])
    registered = subprocess.run(
        [
            str(runtime_bin(settings, "spark", "python")),
            str(ROOT / "scripts" / "register_sasrec.py"),
            "--seeds",
            "1",
            "2",
            *job_args,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    old, new = (
        line.split()[-1]
        for line in registered.stdout.splitlines()
        if line.startswith("registered version ")
    )
    from mlflow import MlflowClient

    MlflowClient(settings.mlflow.tracking_uri).set_registered_model_alias(run, CHAMPION, old)
    seen: dict[str, list[float]] = {old: [], new: []}
    answered: list[str] = []  # the event id of every list
    stop = threading.Event()
    watcher = threading.Thread(target=watch, args=(settings, seen, answered, stop))
    watcher.start()
    job = start_job(
        "scoring",
        flink_job_command(settings, "scoring", job_args),
        ROOT / ".run/bench" / f"{run}.log",
    )
    try:
        events = list(
            Simulator(
                settings.simulator, events=int(args.rate * (args.before + args.after + 60)), days=1
            ).events()
        )
        step = max(1, args.rate // 10)
        sent = 0
        while not seen[old]:  # the job is up and serving the old version
            produce(settings, events[sent : sent + step], source="bench", out=io.StringIO())
            sent += step
            time.sleep(0.5)
            if not job.alive():
                raise SystemExit(f"the scoring job died:\n{job.tail()}")
        started = time.monotonic()
        promoted = 0.0
        while time.monotonic() - started < args.before + args.after:
            due = started + (sent - step) / args.rate
            time.sleep(max(0.0, due - time.monotonic()))
            produce(settings, events[sent : sent + step], source="bench", out=io.StringIO())
            sent += step
            if not promoted and time.monotonic() - started >= args.before:
                promote(settings, new)
                promoted = time.monotonic()
        triggers = {e[EVENT_ID] for e in events[:sent] if e[EVENT_TYPE] in TRIGGERS}
        deadline = time.monotonic() + 60
        while not triggers <= set(answered) and time.monotonic() < deadline:
            time.sleep(1)
        last_old = max(seen[old]) - promoted
        first_new = min(seen[new]) - promoted if seen[new] else float("nan")
        print(
            f"{args.rate} events/s; after the promotion: last list of version {old} visible at"
            f" {last_old:+.2f} s, first of version {new} at {first_new:+.2f} s"
            f" ({len(seen[old])} old and {len(seen[new])} new lists)"
        )
        lost = len(triggers - set(answered))
        twice = len(answered) - len(set(answered))
        print(f"{len(triggers):,} interactions sent: {lost} lost, {twice} answered twice")
    finally:
        stop.set()
        job.stop()
        watcher.join()


def watch(
    settings: Settings, seen: dict[str, list[float]], answered: list[str], stop: threading.Event
) -> None:
    """Record when each committed list becomes visible, by model version, and its event."""
    from confluent_kafka import Consumer

    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "group.id": f"watch-{time.monotonic_ns()}",
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        }
    )
    consumer.subscribe([settings.kafka.topics.recommendations])
    while not stop.is_set():
        for message in consumer.consume(500, timeout=0.2):
            value = message.value()
            if message.error() is None and value:
                record = json.loads(value)
                seen.setdefault(record[MODEL_VERSION], []).append(time.monotonic())
                answered.append(record[EVENT_ID])
    consumer.close()


if __name__ == "__main__":
    main()
