"""Freshness benchmark: from an event being produced to the user's changed list being readable
through the HTTP API, under a steady background load.

Needs the local stack (`rtrec local up`, started here if it is not running). Starts the scoring
job, the online-store sync and the API on topics of this run, sends simulated traffic at
``--rate`` events/s, and meanwhile ``--probes`` per second: a view by a user of its own (no
other traffic touches it), after which the API is polled every 5 ms until the list answers that
event. Prints p50/p99 of produce -> readable. The deep model is the registry's champion of
``mlflow.model_name`` if there is one (the version is printed). Usage:

    .venvs/app/bin/python bench/freshness.py [--rate 1000] [--seconds 30] [--probes 5] [--settle 10]
        [--env local] [--set key=value ...]
"""

from __future__ import annotations

import io
import os
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from cli import config_parser, free_port, isolated, wait_healthy

from rtrec.config import Settings, load_settings
from rtrec.launch import app_job_command, flink_job_command, start_job
from rtrec.local import up
from rtrec.producer import produce
from rtrec.schema import encode
from rtrec.schema.events import EVENT_ID, EVENT_TS, EVENT_TYPE, USER_ID
from rtrec.sources.simulator import Simulator
from rtrec.streaming.scoring import COMPUTED_AT

KEY = {"X-API-Key": "local-reader-key"}


def main() -> None:
    parser = config_parser(__doc__ or "")
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument(
        "--settle",
        type=float,
        default=10.0,
        help="seconds of load before the probes start: the first seconds of a load are a\n"
        "transient (the slowest probes of a run came from them), not the steady rate",
    )
    parser.add_argument("--probes", type=int, default=5, help="probe events per second")
    args = parser.parse_args()
    run = f"bench-fresh-{os.getpid()}"
    port = free_port()
    up(load_settings(args.env, args.overrides), report=lambda line: None)
    settings, job_args = isolated(args.env, args.overrides, run, [f"serving.port={port}"])
    logs = Path(".run/bench")
    jobs = [
        start_job(
            "scoring", flink_job_command(settings, "scoring", job_args), logs / f"{run}-scoring.log"
        ),
        start_job(
            "sync", app_job_command(settings, "online_store", job_args), logs / f"{run}-sync.log"
        ),
        start_job("api", app_job_command(settings, "api", job_args), logs / f"{run}-api.log"),
    ]
    try:
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=KEY, timeout=5)
        events = list(
            Simulator(
                settings.simulator, events=int(args.rate * (args.settle + args.seconds)), days=1
            ).events()
        )
        template = events[0]
        wait_healthy(port)
        prober = Prober(settings, client, template, run)
        warm_up(prober, jobs)
        print(
            f"{champion(settings)}; {args.rate:,} events/s, probed for {args.seconds:.0f} s"
            f" after {args.settle:.0f} s"
        )
        stop = threading.Event()
        loader = threading.Thread(target=load, args=(settings, events, args.rate, stop))
        loader.start()
        time.sleep(args.settle)
        delays = prober.loop(args.probes, args.seconds)
        stop.set()
        loader.join()
        p50 = statistics.median(delays)
        p99 = statistics.quantiles(delays, n=100)[98] if len(delays) >= 100 else max(delays)
        print(
            f"produce -> readable through the API: p50 {p50 * 1000:.0f} ms, "
            f"p99 {p99 * 1000:.0f} ms, max {max(delays) * 1000:.0f} ms ({len(delays)} probes)"
        )
        computed = prober.computed[1:]  # not the warm-up's
        print(
            f"of which produce -> list computed (its computed_at): p50"
            f" {statistics.median(computed) * 1000:.0f} ms, p99"
            f" {statistics.quantiles(computed, n=100)[98] * 1000:.0f} ms"
        )
    finally:
        for job in jobs:
            job.stop()


def champion(settings: Settings) -> str:
    from rtrec.registry.live import registry_aliases

    versions = registry_aliases(settings.mlflow.tracking_uri, settings.mlflow.model_name)(
        ["champion"]
    )
    return f"model {settings.mlflow.model_name} champion: {versions.get('champion', 'none')}"


def warm_up(prober: Prober, jobs: list[Any]) -> None:
    """Until one probe answers: every job up, the model loaded."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if prober.probe(f"warm-{time.monotonic_ns()}", 5.0) is not None:
            return
        for job in jobs:
            if not job.alive():
                raise SystemExit(f"{job.name} died:\n{job.tail()}")
    raise SystemExit("no list became readable within 300 s")


def load(
    settings: Settings, events: list[dict[str, Any]], rate: int, stop: threading.Event
) -> None:
    step = max(1, rate // 20)
    started = time.monotonic()
    for start in range(0, len(events), step):
        if stop.is_set():
            return
        time.sleep(max(0.0, started + start / rate - time.monotonic()))
        produce(settings, events[start : start + step], source="bench", out=io.StringIO())


class Prober:
    """Sends a view by a user of its own and times until the API answers it. One long-lived
    producer (thread-safe) sends every probe, so no connection set-up is counted."""

    def __init__(
        self, settings: Settings, client: httpx.Client, template: dict[str, Any], run: str
    ):
        from confluent_kafka import Producer

        self.run = run  # in every probe's user and event id: Redis outlives a run's topics
        # Per answered probe, from producing it to the scoring job stamping its list.
        self.computed: list[float] = []

        self.topic = settings.kafka.topics.events
        self.client = client
        self.template = template
        self.producer = Producer(
            {"bootstrap.servers": settings.kafka.bootstrap_servers, "linger.ms": 0}
        )

    def probe(self, name: str, timeout_s: float) -> float | None:
        """Seconds from producing the probe to the API answering it (None: timeout)."""
        name = f"{self.run}-{name}"
        event = {**self.template, EVENT_ID: name, USER_ID: name, EVENT_TYPE: "view"}
        sent, sent_ms = time.monotonic(), time.time() * 1000
        self.producer.produce(
            self.topic, encode(event), name.encode(), timestamp=int(event[EVENT_TS])
        )
        self.producer.poll(0)
        path = f"/v1/users/{name}/recommendations"
        while time.monotonic() - sent < timeout_s:
            response = self.client.get(path)
            if response.status_code == 200 and response.json().get(EVENT_ID) == name:
                self.computed.append((response.json()[COMPUTED_AT] - sent_ms) / 1000)
                return time.monotonic() - sent
            time.sleep(0.005)
        return None

    def loop(self, per_s: int, seconds: float) -> list[float]:
        """``per_s`` probes a second, each on a thread of its own: a probe waits a second or
        so for its answer, and the next is due before that."""
        started = time.monotonic()
        with ThreadPoolExecutor(max(4, per_s * 4)) as pool:
            pending = []
            n = 0
            while time.monotonic() - started < seconds:
                pending.append(pool.submit(self.probe, f"probe-{n}", 10.0))
                n += 1
                time.sleep(max(0.0, started + n / per_s - time.monotonic()))
            delays = [future.result() for future in pending]
        missed = delays.count(None)
        if missed:
            print(f"{missed} of {len(delays)} probes got no answer within 10 s")
        answered = [(n / per_s, d) for n, d in enumerate(delays) if d is not None]
        # When the slowest were sent: spread out, or together (a pause of the pipeline)?
        slowest = sorted(answered, key=lambda probe: -probe[1])[:8]
        print(
            "slowest probes (sent at s: took ms): "
            + ", ".join(f"{at:.1f}: {took * 1000:.0f}" for at, took in sorted(slowest))
        )
        return [delay for _, delay in answered]


if __name__ == "__main__":
    main()
